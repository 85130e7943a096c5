"""The harness (testing/harness.py): a randomized fault-injection run, then one test per invariant.

The run prints its seed; replay a failure with ERP_CONNECT_HARNESS_SEED=N, and make it longer or
shorter with ERP_CONNECT_HARNESS_SECONDS (default 120 s of faults, plus settling). The soak mode:
``bench --site SITE execute erp_connect.testing.harness.soak --kwargs "{'minutes': 10, 'seed': 7}"``.
"""

import unittest

from erp_connect.testing.base import ConnectTestCase
from erp_connect.testing.harness import Harness, seconds_from_env, seed_from_env


class TestHarness(ConnectTestCase):
	findings = None

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.findings = Harness(seed_from_env(), seconds_from_env()).run()

	def assertHolds(self, invariant: str):
		self.assertFalse(self.findings.violations[invariant], self.findings.describe(invariant))

	def test_every_committed_save_has_its_events(self):
		self.assertHolds("saves have events")

	def test_every_committed_event_is_delivered_or_dead(self):
		self.assertHolds("delivered or dead")

	# Known, fixed on another branch: a drain claims up to 200 events under one lease (3 x timeout +
	# 5 s) and does not renew it while it sends, so a receiver slow near the client timeout (or one
	# that answers a byte at a time) lets the lease run out under the send; another drain claims the
	# events again and sends them too, at the same time (the harness's trickle phase) and after they
	# were acknowledged (its slow phases, where no crash is injected).
	@unittest.expectedFailure
	def test_no_event_is_in_flight_twice(self):
		self.assertHolds("never in flight twice")

	@unittest.expectedFailure  # known: the lease expiry above
	def test_an_acknowledged_event_is_sent_again_only_after_a_crash(self):
		self.assertHolds("never multiplied")

	def test_per_document_order(self):
		self.assertHolds("per-document order")

	# Known, fixed on another branch: the feed hands out a cursor past a (modified, name) that a
	# transaction still open may commit later, so a save held open for seconds (the harness's
	# savers) whose commit lands after a later save was read is never seen. Every run has several.
	@unittest.expectedFailure
	def test_the_feed_misses_nothing(self):
		self.assertHolds("feed misses nothing")

	def test_inbound_records_are_written_once(self):
		self.assertHolds("inbound written once")

	def test_a_410_disables_its_rule_and_keeps_its_events(self):
		self.assertHolds("410 disables the rule")
