"""When to try a delivery again, and what a response or an exception means for it.

Frappe's own Webhook makes three quick tries and forgets the event; an outage of a day must not
lose anything here, so the default schedule spreads eight attempts over more than a day.
"""

import email.utils
import enum
import math
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import requests

# Delay after the 1st, 2nd, ... failed attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (27.6 h in all)
DEFAULT_SCHEDULE: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
# ±10 % keeps the shortest possible total above 24 h while spreading a thundering herd
DEFAULT_JITTER = 0.1
# A server may ask us to wait, but not for longer than this
MAX_RETRY_AFTER_SECONDS = 24 * 3600

SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")  # delta-seconds, ASCII digits only

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524})


class Outcome(str, enum.Enum):
	DELIVERED = "delivered"
	RETRY = "retry"  # transient: try again later with the same event id
	DEAD = "dead"  # permanent: keep it for a person to look at
	DISABLE = "disable"  # the target is gone (410): stop sending to it


@dataclass(frozen=True)
class Verdict:
	outcome: Outcome
	reason: str
	retry_after: float | None = None  # seconds the server asked us to wait


@dataclass(frozen=True)
class RetryPolicy:
	schedule: Sequence[float] = DEFAULT_SCHEDULE
	jitter: float = DEFAULT_JITTER

	@property
	def max_attempts(self) -> int:
		return len(self.schedule) + 1

	def next_delay(
		self,
		failed_attempts: int,
		retry_after: float | None = None,
		rand: Callable[[], float] = random.random,
	) -> float | None:
		"""Seconds to wait after ``failed_attempts`` failures, or None when it is time to give up.

		A Retry-After longer than the scheduled delay wins (capped at a day), so we never call back
		sooner than the server asked.
		"""
		if failed_attempts < 1 or failed_attempts > len(self.schedule):
			return None
		base = self.schedule[failed_attempts - 1]
		delay = base * (1 + self.jitter * (2 * rand() - 1))
		if retry_after is not None:
			delay = max(delay, capped_wait(retry_after))
		return delay


def capped_wait(seconds: float) -> float:
	"""A wait a server asked for, as we honour it: between nothing and a day. Also what keeps a
	connector-wide pause finite and short enough for a Redis expiry (NaN counts as nothing)."""
	if math.isnan(seconds):
		return 0.0
	return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
	"""Seconds from a Retry-After header: delta-seconds or an HTTP date; None when absent or invalid."""
	if value is None:
		return None
	value = value.strip()
	if not value:
		return None
	if SECONDS.fullmatch(value):  # Shopify sends decimals ("2.0")
		return capped_wait(float(value))  # float() of a few hundred digits is inf
	try:
		when = email.utils.parsedate_to_datetime(value)
	except (TypeError, ValueError, IndexError):
		return None
	if when is None or when.tzinfo is None:
		return None
	now = time.time() if now is None else now
	return capped_wait(when.timestamp() - now)  # a date in 9999 is a day


def classify_response(status: int, headers: Mapping[str, str] | None = None) -> Verdict:
	"""What an HTTP status means for the event that produced it."""
	headers = {k.lower(): v for k, v in (headers or {}).items()}
	if 200 <= status < 300:
		return Verdict(Outcome.DELIVERED, f"HTTP {status}")
	if status == 410:
		return Verdict(Outcome.DISABLE, "HTTP 410 Gone: the receiver says this target no longer exists")
	if status in RETRYABLE_STATUS:
		return Verdict(Outcome.RETRY, f"HTTP {status}", parse_retry_after(headers.get("retry-after")))
	if 300 <= status < 400:
		return Verdict(Outcome.DEAD, f"HTTP {status}: redirects are not followed, update the target URL")
	if 400 <= status < 500:
		return Verdict(Outcome.DEAD, f"HTTP {status}: the receiver rejected the request")
	return Verdict(Outcome.RETRY, f"HTTP {status}")


def classify_exception(exc: BaseException) -> Verdict:
	"""What a failure to get any response means: a broken URL is permanent, the network is not."""
	from erp_connect.engine.http import BlockedTargetError

	name = type(exc).__name__
	if isinstance(
		exc, BlockedTargetError | requests.exceptions.InvalidURL | requests.exceptions.MissingSchema
	):
		return Verdict(Outcome.DEAD, f"{name}: {exc}")
	if isinstance(exc, requests.exceptions.InvalidSchema | requests.exceptions.InvalidHeader):
		return Verdict(Outcome.DEAD, f"{name}: {exc}")
	if isinstance(exc, requests.exceptions.Timeout):
		return Verdict(Outcome.RETRY, f"timeout: {exc}")
	return Verdict(Outcome.RETRY, f"{name}: {exc}")
