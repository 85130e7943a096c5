import heapq
import itertools
import random

import pytest

from erp_connect.engine.wake import LINGER_SECONDS, Linger, Waker


def test_a_committer_increments_again_only_after_the_linger():
	waker = Waker(linger=1.0)
	assert waker.due("c", 10.0)
	waker.sent("c", 10.0)
	assert not waker.due("c", 10.5)
	assert not waker.due("c", 10.999)
	assert waker.due("c", 11.0)
	assert waker.due("other", 10.5)  # connectors are counted apart


def test_a_drain_sleeps_only_after_a_look_that_started_a_linger_after_the_last_new_wake():
	linger = Linger(seen=b"3", now=100.0, linger=1.0)
	assert not linger.may_sleep(100.9)
	assert linger.may_sleep(101.0)
	linger.saw(b"3", now=101.5)  # unchanged: no new wake
	assert linger.may_sleep(101.0)
	linger.saw(b"4", now=101.5)
	assert not linger.may_sleep(101.6)
	assert linger.wait(101.6) == pytest.approx(0.9)
	assert linger.may_sleep(102.5)
	assert linger.wait(103.0) == 0.0


# -- the protocol under random interleavings -------------------------------------------------------
# Committers and drains are simulated as processes whose every step (a commit, a Redis command and its
# reply, a look at the outbox) takes a random time. Redis commands are atomic, as they are in Redis.
# Whatever the timing, every committed event must be seen by some drain before the last one sleeps.


class World:
	def __init__(self, rng, committer_linger, drain_linger):
		self.rng = rng
		self.committer_linger, self.drain_linger = committer_linger, drain_linger
		self.now = 0.0
		self.counter = None  # the Redis counter; None = deleted
		self.committed: set[int] = set()
		self.seen: set[int] = set()
		self._agenda = []
		self._order = itertools.count()

	def spawn(self, process, after=0.0):
		heapq.heappush(self._agenda, (self.now + after, next(self._order), process))

	def run(self):
		while self._agenda:
			self.now, _, process = heapq.heappop(self._agenda)
			try:
				delay = next(process)
			except StopIteration:
				continue
			self.spawn(process, delay)

	def step(self):
		"""A random duration: mostly short, sometimes a long stall (a slow commit, a busy worker)."""
		return self.rng.expovariate(1 / 0.05) if self.rng.random() < 0.9 else self.rng.uniform(0.2, 3.0)

	def committer(self, events):
		waker = Waker(self.committer_linger)
		for event in events:
			yield self.step()
			self.committed.add(event)  # the commit
			yield self.step()
			sent_at = self.now
			if not waker.due("c", sent_at):
				continue
			yield self.step()
			self.counter = (self.counter or 0) + 1  # INCR, atomic
			first = self.counter == 1
			yield self.step()  # the reply
			if first:
				self.spawn(self.drain(), self.step())  # enqueued; a worker starts it later
			waker.sent("c", sent_at)

	def drain(self):
		yield self.step()
		value = self.counter  # GET
		yield self.step()
		linger = Linger(value, self.now, self.drain_linger)
		while True:
			looked_at = self.now
			yield self.step()
			found = self.committed - self.seen  # the claim's look at the outbox
			self.seen |= found
			if found:
				yield self.step()  # sending
				continue
			yield self.step()
			value = self.counter  # GET
			yield self.step()
			linger.saw(value, self.now)
			if not linger.may_sleep(looked_at):
				yield min(0.2, linger.wait(self.now)) or 0.01
				continue
			yield self.step()
			if self.counter is None or self.counter == linger.seen:  # delete if unchanged, atomic
				self.counter = None
				return


def lost_events(seed, committer_linger=LINGER_SECONDS, drain_linger=LINGER_SECONDS):
	rng = random.Random(seed)
	world = World(rng, committer_linger, drain_linger)
	events = itertools.count()
	for _ in range(rng.randint(1, 4)):
		batch = [next(events) for _ in range(rng.randint(1, 30))]
		world.spawn(world.committer(batch), rng.uniform(0, 2))
	world.run()
	return world.committed - world.seen


def test_no_committed_event_is_left_unseen_whatever_the_timing():
	for seed in range(400):
		assert lost_events(seed) == set(), f"seed {seed}"


def test_the_simulation_finds_losses_when_committers_skip_for_longer_than_drains_linger():
	# the check above has teeth: break the rule and events are left for the sweeper
	assert any(lost_events(seed, committer_linger=5.0, drain_linger=0.5) for seed in range(400))
