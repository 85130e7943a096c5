"""When a committer must wake a connector's drain, and when a drain may go back to sleep.

Committers increment a per-connector counter in Redis after their commit; the increment that
finds it at zero enqueues a drain (services/delivery.py). Two rules spare most increments when
saves come quickly, without ever leaving a committed event unseen:

- a drain stays awake until it has looked at the outbox LINGER_SECONDS after the last new
  increment it saw (``Linger``);
- so a committer whose increment was sent at time t knows a drain will look again after
  t + LINGER_SECONDS, and a commit that is finished before then needs no increment (``Waker``).

Each process measures only its own durations (monotonic clocks); the drain sees an increment only
after it was sent, so its own "since" is never earlier than the committer's t.
"""

LINGER_SECONDS = 1.0


class Waker:
	"""The committers' side, one per process: when the counter must be incremented again."""

	def __init__(self, linger: float = LINGER_SECONDS):
		self.linger = linger
		self._sent: dict[str, float] = {}

	def due(self, key: str, now: float) -> bool:
		"""Whether a commit finished before ``now`` must increment ``key``."""
		sent = self._sent.get(key)
		return sent is None or now >= sent + self.linger

	def sent(self, key: str, at: float) -> None:
		"""Record an increment of ``key`` sent at ``at`` (taken before sending it)."""
		self._sent[key] = at


class Linger:
	"""The drain's side: the counter value it last saw, and since when."""

	def __init__(self, seen, now: float, linger: float = LINGER_SECONDS):
		self.seen = seen
		self.since = now
		self.linger = linger

	def saw(self, value, now: float) -> None:
		"""The counter read at ``now`` (after the reply came back) held ``value``."""
		if value != self.seen:
			self.seen, self.since = value, now

	def may_sleep(self, looked_at: float) -> bool:
		"""Whether a look at the outbox that started at ``looked_at`` and found nothing is late
		enough for every commit that skipped its increment."""
		return looked_at >= self.since + self.linger

	def wait(self, now: float) -> float:
		"""Seconds until a look at the outbox would be late enough."""
		return max(0.0, self.since + self.linger - now)
