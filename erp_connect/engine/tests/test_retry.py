import email.utils

import pytest
import requests

from erp_connect.engine import http
from erp_connect.engine.http import BlockedTargetError
from erp_connect.engine.retry import (
	DEFAULT_SCHEDULE,
	MAX_RETRY_AFTER_SECONDS,
	Outcome,
	RetryPolicy,
	capped_wait,
	classify_exception,
	classify_response,
	parse_retry_after,
)

DAY = 24 * 3600


def test_default_schedule_survives_an_outage_of_more_than_a_day_even_with_least_jitter():
	policy = RetryPolicy()
	total = sum(policy.next_delay(n, rand=lambda: 0.0) for n in range(1, policy.max_attempts))
	assert total > DAY
	assert policy.max_attempts == len(DEFAULT_SCHEDULE) + 1


def test_delays_grow_and_stay_within_jitter_bounds():
	policy = RetryPolicy()
	for n, base in enumerate(DEFAULT_SCHEDULE, start=1):
		low, high = policy.next_delay(n, rand=lambda: 0.0), policy.next_delay(n, rand=lambda: 0.999999)
		assert base * 0.9 == pytest.approx(low)
		assert base * 0.9 <= low < high <= base * 1.1
	assert policy.next_delay(1, rand=lambda: 0.5) < policy.next_delay(2, rand=lambda: 0.5)


def test_jitter_spreads_delays():
	policy = RetryPolicy()
	delays = {round(policy.next_delay(3), 3) for _ in range(50)}
	assert len(delays) > 10


def test_gives_up_after_the_schedule():
	policy = RetryPolicy(schedule=(1, 2))
	assert policy.next_delay(2) is not None
	assert policy.next_delay(3) is None
	assert policy.next_delay(0) is None


def test_retry_after_longer_than_schedule_wins_but_is_capped():
	policy = RetryPolicy()
	assert policy.next_delay(1, retry_after=120, rand=lambda: 0.5) == 120
	assert policy.next_delay(1, retry_after=1, rand=lambda: 0.5) == pytest.approx(5)
	assert policy.next_delay(1, retry_after=10 * DAY) == MAX_RETRY_AFTER_SECONDS


def test_parse_retry_after_seconds_and_http_dates():
	assert parse_retry_after("120") == 120
	assert parse_retry_after(" 7 ") == 7
	now = 1_700_000_000
	date = email.utils.formatdate(now + 90, usegmt=True)
	assert parse_retry_after(date, now=now) == pytest.approx(90)
	past = email.utils.formatdate(now - 90, usegmt=True)
	assert parse_retry_after(past, now=now) == 0
	for bad in (None, "", "soon", "-5", "1.5e3", "2.", ".5"):
		assert parse_retry_after(bad) is None


def test_parse_retry_after_with_decimals_as_shopify_sends_it():
	assert parse_retry_after("2.0") == 2.0
	assert parse_retry_after("0.5") == 0.5


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status):
	assert classify_response(status).outcome is Outcome.DELIVERED


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
def test_transient_statuses_retry(status):
	assert classify_response(status).outcome is Outcome.RETRY


@pytest.mark.parametrize("status", [301, 302, 400, 401, 403, 404, 405, 409, 413, 422])
def test_permanent_statuses_dead_letter(status):
	assert classify_response(status).outcome is Outcome.DEAD


def test_410_disables_the_target():
	assert classify_response(410).outcome is Outcome.DISABLE


def test_429_carries_retry_after_from_headers_in_any_case():
	verdict = classify_response(429, {"Retry-After": "30"})
	assert verdict.outcome is Outcome.RETRY and verdict.retry_after == 30
	assert classify_response(503, {"retry-after": "5"}).retry_after == 5


@pytest.mark.parametrize(
	"exc, outcome",
	[
		(requests.exceptions.ConnectTimeout("x"), Outcome.RETRY),
		(requests.exceptions.ReadTimeout("x"), Outcome.RETRY),
		(requests.exceptions.ConnectionError("refused"), Outcome.RETRY),
		(requests.exceptions.SSLError("bad cert"), Outcome.RETRY),
		(OSError("reset"), Outcome.RETRY),
		(requests.exceptions.InvalidURL("x"), Outcome.DEAD),
		(requests.exceptions.MissingSchema("x"), Outcome.DEAD),
		(requests.exceptions.InvalidSchema("x"), Outcome.DEAD),
		(BlockedTargetError("private"), Outcome.DEAD),
	],
)
def test_exceptions_are_classified(exc, outcome):
	assert classify_exception(exc).outcome is outcome


def test_a_retry_after_of_years_is_capped_at_a_day():
	assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT") == MAX_RETRY_AFTER_SECONDS
	assert parse_retry_after(str(10 * DAY)) == MAX_RETRY_AFTER_SECONDS
	assert parse_retry_after("9" * 400) == MAX_RETRY_AFTER_SECONDS  # float() of it is inf
	assert classify_response(429, {"Retry-After": "31536000000"}).retry_after == MAX_RETRY_AFTER_SECONDS


@pytest.mark.parametrize(
	"seconds, honoured",
	[
		(120, 120),
		(0, 0),
		(-5, 0),
		(10 * DAY, MAX_RETRY_AFTER_SECONDS),
		(1e30, MAX_RETRY_AFTER_SECONDS),
		(float("inf"), MAX_RETRY_AFTER_SECONDS),
		(float("nan"), 0),
	],
)
def test_a_connector_wide_wait_is_between_nothing_and_a_day(seconds, honoured):
	assert capped_wait(seconds) == honoured


@pytest.mark.parametrize("host", ["a..b", "x" * 64 + ".example.com"])
def test_a_malformed_host_is_dead_at_once_with_a_clear_reason(host):
	for allow_private in (False, True):
		with pytest.raises(Exception) as raised:
			http.send("POST", f"http://{host}/hook", allow_private=allow_private, timeout=1)
		verdict = classify_exception(raised.value)
		assert verdict.outcome is Outcome.DEAD, verdict
		assert f"cannot resolve host {host}" in verdict.reason
