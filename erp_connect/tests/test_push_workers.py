"""Delivery with real RQ worker processes: one killed with SIGKILL in the middle of a drain, two
draining the same connector at once, and a slow receiver with the sweeper's drain joining in."""

import time
from collections import Counter, defaultdict

import frappe
from frappe.utils import now_datetime

from erp_connect.engine import wake
from erp_connect.services.push import delivery
from erp_connect.services.push import wake as waking
from erp_connect.testing.base import HeldOpenTransaction, kill_worker, make_customer, start_worker
from erp_connect.testing.push import CUSTOMER_MAP, PushTestCase
from erp_connect.testing.remote import Reply


class TestDeliveryWorkers(PushTestCase):
	def event_rows(self) -> list:
		frappe.db.commit()
		return frappe.get_all(
			"Sync Event",
			{"connector": self.connector.name},
			["name", "event_id", "status", "reference_name", "seq"],
			order_by="name asc",
		)

	def wait_until_all_delivered(self, timeout: float) -> list:
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			rows = self.event_rows()
			if rows and all(r.status == "Delivered" for r in rows):
				return rows
			time.sleep(0.25)
		statuses = Counter(r.status for r in self.event_rows())
		raise AssertionError(f"not all events delivered within {timeout} s: {dict(statuses)}")

	def wait_until_delivered(self, customer: str, timeout: float) -> None:
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			frappe.db.commit()
			if frappe.db.get_value("Sync Event", {"reference_name": customer}, "status") == "Delivered":
				return
			time.sleep(0.05)
		raise AssertionError(f"{customer} not delivered within {timeout} s")

	def test_a_claim_sees_what_other_drains_claimed_while_it_waited_for_the_lock(self):
		from unittest.mock import patch

		self.customer_rule()
		customers = [make_customer() for _ in range(3)]
		first_two = tuple(self.events_of(c)[0].name for c in customers[:2])  # commits
		drainer = delivery.Drainer(self.connector.name)  # a fresh drain job: its snapshot is from now
		drainer.routes = {r.name: None for r in drainer.rules}  # what claiming reads of them
		claimed_elsewhere = (  # meanwhile another worker's drain claimed the two oldest, and committed
			"frappe.db.sql(\"update `tabSync Event` set status = 'Sending', claim_token = 'other',"
			f' lease_until = now() + interval 60 second where name in {first_two!r}")'
		)
		HeldOpenTransaction(claimed_elsewhere).commit()
		with patch.object(delivery.Drainer, "claim_limit", return_value=2):
			_claim, rows = drainer.claim()
		self.assertEqual([r.reference_name for r in rows], [customers[2].name])

	def test_claims_grow_to_what_half_a_lease_sends_at_the_requests_pace_never_below_the_timeouts(self):
		from erp_connect.engine.transports import Route

		self.customer_rule()
		drainer = delivery.Drainer(self.connector.name)  # timeout 2 s, lease 11 s, 8 in flight
		drainer.routes = {"rule": Route("/hooks")}
		self.assertEqual(drainer.claim_limit(), 8 * 4)  # every request may take the whole 2 s
		drainer.timed(0.01)
		self.assertEqual(drainer.claim_limit(), delivery.CLAIM_CHUNK)  # 5.5 s at 10 ms: 4,400, capped
		for _ in range(40):
			drainer.timed(1.9)  # the receiver slowed down to near the timeout
		self.assertEqual(drainer.claim_limit(), 8 * 4)

	def test_a_save_that_skips_the_wake_up_is_delivered_by_the_lingering_drain(self):
		self.customer_rule()
		wake_key = waking.wake_key(self.connector.name)
		worker = start_worker(burst=False)
		try:
			for _ in range(10):  # a loaded machine may be too slow for some tries
				time.sleep(wake.LINGER_SECONDS + 0.5)  # the drain asleep, this process's increment old
				first = make_customer()
				frappe.db.commit()  # increments the counter and enqueues a drain
				woken_at = time.monotonic()
				self.wait_until_delivered(first.name, timeout=30)
				if time.monotonic() - woken_at > 0.6 * wake.LINGER_SECONDS:
					continue  # the worker was too slow to leave time for the second save: again
				counter = frappe.cache.get(wake_key)
				second = make_customer()
				frappe.db.commit()
				self.assertEqual(frappe.cache.get(wake_key), counter)  # no increment was sent
				# no sweeper runs here: only the drain that delivered the first save can find it
				self.wait_until_delivered(second.name, timeout=5)
				return
			self.fail("the first save was never delivered quickly enough to try the second")
		finally:
			kill_worker(worker)

	def test_a_worker_killed_mid_drain_loses_nothing(self):
		frappe.db.set_value("Connector", self.connector.name, "timeout_seconds", 1)  # lease: 3 * 1 + 5 s
		self.customer_rule()
		for _ in range(120):
			make_customer()
		frappe.db.commit()  # kicks a drain job
		all_ids = {r.event_id for r in self.event_rows()}
		self.assertEqual(len(all_ids), 120)

		self.remote.set_default("/hooks", Reply(200, delay=0.25))
		worker = start_worker(burst=False)
		self.remote.wait_for_requests(16, "/hooks", timeout=60)
		kill_worker(worker)  # the worker and its work horse, mid-drain

		statuses = Counter(r.status for r in self.event_rows())
		self.assertGreater(statuses["Sending"], 0, statuses)  # claimed by the dead worker, unfinished
		self.assertLess(statuses["Delivered"], 120, statuses)

		self.remote.set_default("/hooks", Reply(200))
		time.sleep(
			delivery.Drainer(self.connector.name).lease_seconds + 0.5
		)  # the dead worker's lease runs out
		delivery.sweep()  # what the scheduler does every minute
		frappe.db.commit()
		restarted = start_worker(burst=True)
		self.wait_until_all_delivered(timeout=90)
		restarted.wait(timeout=60)

		received = {r.headers["webhook-id"] for r in self.remote.received("/hooks") if r.status == 200}
		self.assertEqual(received & all_ids, all_ids)  # at least once each, none lost

	def test_two_workers_never_send_an_event_twice_and_keep_per_document_order(self):
		self.make_rule(self.connector.name, "Customer", ("after_insert", "on_update"), CUSTOMER_MAP)
		for _ in range(15):
			customer = make_customer()
			for n in range(3):
				customer.customer_name = f"{customer.customer_name[:40]} v{n}"
				customer.save()
		frappe.db.commit()
		rows = self.event_rows()
		self.assertEqual(len(rows), 15 * 5)  # after_insert + on_update on insert, then 3 updates

		self.remote.set_default("/hooks", Reply(200, delay=0.02))
		# two drain jobs for the same connector, run by two workers at the same time
		minute = now_datetime().strftime("%H%M%S")
		# one by the dotted path of jobs queued before 0.2, which must keep working
		for n, path in ((1, "erp_connect.services.delivery.drain"), (2, waking.DRAIN)):
			frappe.enqueue(
				path,
				job_id=f"erp_connect:test-drain:{self.connector.name}:{minute}:{n}",
				connector=self.connector.name,
			)
		workers = [start_worker(burst=True) for _ in range(2)]
		self.wait_until_all_delivered(timeout=120)
		for w in workers:
			w.wait(timeout=60)

		received = [r.json() for r in self.remote.received("/hooks")]
		counts = Counter(b["id"] for b in received)
		self.assertEqual(set(counts), {r.event_id for r in rows})
		self.assertEqual(max(counts.values()), 1, "an event was sent twice")
		seqs = defaultdict(list)
		for body in received:
			seqs[body["name"]].append(body["seq"])
		for name, order in seqs.items():
			self.assertEqual(order, sorted(order), f"{name} delivered out of order: {order}")
			self.assertEqual(order, list(range(1, 6)))

	def test_a_slow_receiver_gets_each_event_once_while_the_sweepers_drain_joins_in(self):
		# 1.5 s per request with a 2 s timeout: 64 events at 8 in flight take 12 s, longer than a
		# lease (3 * 2 + 5 s); a drain must not let its events be claimed again meanwhile
		self.customer_rule()
		self.remote.set_default("/hooks", Reply(200, delay=1.5))
		for _ in range(64):
			make_customer()
		frappe.db.commit()  # wakes a drain
		ids = {r.event_id for r in self.event_rows()}
		self.assertEqual(len(ids), 64)

		first = start_worker(burst=True)
		second = None
		try:
			self.remote.wait_for_requests(1, "/hooks", timeout=60)
			second = start_worker(burst=False)  # idle until the sweep below gives it a drain
			time.sleep(delivery.Drainer(self.connector.name).lease_seconds + 0.5)
			delivery.sweep()  # what the scheduler does every minute
			frappe.db.commit()
			self.wait_until_all_delivered(timeout=60)
			first.wait(timeout=30)
		finally:
			for worker in (first, second):
				if worker is not None and worker.poll() is None:
					kill_worker(worker)

		counts = Counter(r.json()["id"] for r in self.remote.received("/hooks"))
		self.assertEqual(set(counts), ids)
		self.assertEqual({i: n for i, n in counts.items() if n > 1}, {}, "events sent more than once")

	def test_a_backlog_calls_in_more_workers_on_disjoint_documents(self):
		# 4 requests in flight per drain, 0.4 s each: one drain alone never has more than 4 at once
		frappe.db.set_value("Connector", self.connector.name, "max_in_flight", 4)
		self.customer_rule()
		self.remote.set_default("/hooks", Reply(200, delay=0.4))
		for _ in range(96):
			make_customer()
		frappe.db.commit()  # wakes one drain; its full claims call helpers in
		ids = {r.event_id for r in self.event_rows()}
		# idle workers wait for jobs: the helper drains are queued only once the first one has a claim
		workers = [start_worker(burst=False) for _ in range(4)]
		try:
			self.wait_until_all_delivered(timeout=120)
		finally:
			for worker in workers:
				kill_worker(worker)
		received = self.remote.received("/hooks")
		counts = Counter(r.json()["id"] for r in received)
		self.assertEqual(set(counts), ids)
		self.assertEqual(max(counts.values()), 1, "an event was sent twice")
		arrivals = sorted(r.received_at for r in received)
		at_once = max(sum(1 for t in arrivals if start <= t < start + 0.3) for start in arrivals)
		self.assertGreater(at_once, 4, "only one drain worked: no more than its own requests at once")
