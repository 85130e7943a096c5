"""The harness (testing/harness.py): a randomized fault-injection run, then one test per invariant.

The run prints its seed; replay a failure with ERP_CONNECT_HARNESS_SEED=N, and make it longer or
shorter with ERP_CONNECT_HARNESS_SECONDS (default 120 s of faults, plus settling). The soak mode:
``bench --site SITE execute erp_connect.testing.harness.soak --kwargs "{'minutes': 10, 'seed': 7}"``.
"""

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

	# the trickle phase (a receiver answering a byte at a time for longer than a lease) and the slow
	# phases (near the client timeout, no crash) are where a lease could run out under a send
	def test_no_event_is_in_flight_twice(self):
		self.assertHolds("never in flight twice")

	def test_an_acknowledged_event_is_sent_again_only_after_a_crash(self):
		self.assertHolds("never multiplied")

	def test_per_document_order(self):
		self.assertHolds("per-document order")

	# the savers hold transactions open for seconds, so commits land out of (modified, name) order
	def test_the_feed_misses_nothing(self):
		self.assertHolds("feed misses nothing")

	def test_inbound_records_are_written_once(self):
		self.assertHolds("inbound written once")

	def test_a_410_disables_its_rule_and_keeps_its_events(self):
		self.assertHolds("410 disables the rule")
