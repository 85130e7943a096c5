"""Offline POS sync in a real site, over real HTTP with the reference client library.

What the terminals create - customers, invoices, stock entries - stays in the site, as it would in a
real one (submitted ledger entries are not deleted); every run uses fresh item and customer names
(prefix "_Test POS", apart from the names other tests count), and removes its terminals, ledger rows
and connectors.
"""

import json
import os
import sqlite3
import tempfile
import time

import frappe
import requests
from frappe.utils.background_jobs import create_job_id, get_queue
from rq.job import JobStatus

from erp_connect.client.pos import PosClient
from erp_connect.engine.cursor import SETTLE_SECONDS
from erp_connect.services.pos import applier, ledger
from erp_connect.services.pos.feed import STREAM_DOCTYPES
from erp_connect.services.pos.ledger import operation_key
from erp_connect.testing.base import (
	HeldOpenTransaction,
	kill_worker,
	make_api_user,
	ready_workers,
	site_http,
	start_worker,
	stop_workers,
)
from erp_connect.testing.pos import (
	OTHER_USER,
	PREFIX,
	ROLES,
	WALK_IN,
	WAREHOUSE,
	PosTestCase,
	customer,
	forget_queued_applies,
	on_hand,
	receive,
	sale_op,
	stock_item,
)


class TestOfflineTerminal(PosTestCase):
	def test_a_day_offline_then_every_document_exactly_once_and_replays_change_nothing(self):
		items = [stock_item(qty=300) for _ in range(3)]
		frappe.db.commit()
		_, session = site_http()  # the Host header picks the site; the client adds the API key
		db_path = os.path.join(tempfile.mkdtemp(), "till.sqlite")
		client = PosClient(self.url, self.key, self.secret, self.terminal.name, db_path, session=session)
		client.bootstrap()
		client.pull()
		self.assertEqual(client.stock(items[0]), 300)

		# the connection is gone: the terminal keeps selling
		client.base_url = "http://127.0.0.1:9"
		customers = [
			client.record_customer(f"{PREFIX}offline {i} {frappe.generate_hash(length=6)}") for i in range(5)
		]
		sales, expected_total, sold = [], 0.0, dict.fromkeys(items, 0)
		for i in range(200):
			item, qty = items[i % 3], 1 + i % 2
			who = {"customer_client_id": customers[i % 5]} if i < 10 else {"customer": self.walk_in}
			pay = [{"mode_of_payment": "Cash", "amount": qty * 100.0}]
			sales.append(client.record_sale([{"item_code": item, "qty": qty, "rate": 100.0}], pay, **who))
			expected_total += qty * 100
			sold[item] += qty
		for i in range(3):  # returns of offline sales made to offline customers, in the same batch
			client.record_return(
				[{"item_code": items[i % 3], "qty": 1, "rate": 100.0}],
				[{"mode_of_payment": "Cash", "amount": 100.0}],
				return_against_client_id=sales[i],
				customer_client_id=customers[i % 5],
			)
			expected_total -= 100
			sold[items[i % 3]] -= 1
		# stock counted on the shop floor: two broken, one found
		client.record_stock_adjustment(items[0], -2, "broken in the shop")
		client.record_stock_adjustment(items[1], 1, "found behind the counter")
		sold[items[0]] += 2
		sold[items[1]] -= 1
		self.assertFalse(client.sync()["ok"])
		self.assertEqual(client.pending(), 210)
		self.assertEqual(self.ledger(), [])

		# back online, with a worker applying what arrives
		client.base_url = self.url
		worker = start_worker(burst=False)
		try:
			client.sync_until_idle(timeout=300)
		finally:
			kill_worker(worker)
		statuses = {op["status"] for op in client.operations()}
		self.assertEqual(
			statuses, {"applied"}, [op for op in client.operations() if op["status"] != "applied"][:3]
		)

		invoices = self.invoices_of()
		self.assertEqual(len(invoices), 203)
		self.assertEqual(sum(i.is_return for i in invoices), 3)
		self.assertAlmostEqual(sum(i.grand_total for i in invoices), expected_total)
		self.assertEqual(
			frappe.db.count("Customer", {"customer_name": ("like", f"{PREFIX}offline %")}) >= 5, True
		)
		created = {op["client_id"]: op["name"] for op in client.operations()}
		self.assertEqual(len(set(created.values())), 210, "one document per operation")
		for item in items:
			self.assertEqual(on_hand(item), 300 - sold[item])

		# the whole batch again, half of it in another order: nothing changes
		with sqlite3.connect(db_path) as db:
			ops = [
				{"client_id": c, "type": t, "timestamp": ts, "data": json.loads(d)}
				for c, t, ts, d in db.execute(
					"select client_id, type, timestamp, data from outbox order by seq"
				)
			]
		started = time.perf_counter()
		for batch in (ops, ops[::-2]):
			results = self.push(batch)["results"]
			self.assertEqual({r["status"] for r in results}, {"applied"})
			self.assertEqual(
				{r["client_id"]: r["name"] for r in results},
				{o["client_id"]: created[o["client_id"]] for o in batch},
			)
		self.assertLess(time.perf_counter() - started, 10)
		self.assertEqual(len(self.invoices_of()), 203)
		for item in items:
			self.assertEqual(on_hand(item), 300 - sold[item])


class TestStockPolicies(PosTestCase):
	def sell_the_last_unit_twice(self, policy: str):
		item = stock_item(qty=1)
		tills = [self.make_terminal(policy), self.make_terminal(policy)]
		frappe.db.commit()
		for till in tills:
			ledger.push(till, [sale_op(frappe.generate_hash(length=16), self.walk_in, item)])
			frappe.db.commit()
		for till in tills:
			applier.apply(till.name)
		return item, tills, [op for till in tills for op in self.ledger(till)]

	def test_accept_and_flag_books_both_sales_and_flags_the_shortfall(self):
		elsewhere = self.make_connector()  # a system that hears about every invoice
		self.make_rule(elsewhere.name, "Sales Invoice", events=("on_submit",))
		frappe.db.commit()
		item, tills, ops = self.sell_the_last_unit_twice("Accept and Flag")
		events = frappe.get_all(
			"Sync Event", {"connector": elsewhere.name}, ["reference_name", "correlation_id"]
		)
		origins = {
			op.reference_name: operation_key(t.name, op.client_id) for t in tills for op in self.ledger(t)
		}
		self.assertEqual({e.reference_name: e.correlation_id for e in events}, origins)
		self.assertEqual(sorted(op.status for op in ops), ["Applied", "Flagged"])
		flagged = next(op for op in ops if op.status == "Flagged")
		self.assertIn(f"{item} needs 1", flagged.flag)
		self.assertEqual(sum(len(self.invoices_of(t)) for t in tills), 2)
		self.assertEqual(on_hand(item), -1)

	def test_accept_and_reconcile_also_leaves_a_task(self):
		item, _, ops = self.sell_the_last_unit_twice("Accept and Reconcile")
		flagged = next(op for op in ops if op.status == "Flagged")
		self.assertTrue(
			frappe.db.exists("ToDo", {"reference_name": flagged.reference_name, "status": "Open"})
		)
		self.assertEqual(on_hand(item), -1)

	def test_block_keeps_the_second_sale_for_review_until_stock_arrives(self):
		item, tills, ops = self.sell_the_last_unit_twice("Block")
		self.assertEqual(sorted(op.status for op in ops), ["Applied", "Failed"])
		failed = next(op for op in ops if op.status == "Failed")
		self.assertIn("not enough stock", failed.error)
		self.assertEqual(on_hand(item), 0)
		self.assertEqual(sum(len(self.invoices_of(t)) for t in tills), 1)

		receive(item, 1, days_ago=1)  # found: it was there before the sale
		frappe.db.commit()
		till = next(t for t in tills if self.ledger(t)[0].status == "Failed")
		ledger.retry(operation_key(till.name, failed.client_id))
		frappe.db.commit()
		applier.apply(till.name)
		[retried] = self.ledger(till)
		self.assertEqual(retried.status, "Applied", retried.error)
		self.assertEqual(on_hand(item), 0)

	def test_a_sale_without_a_customer_goes_to_the_profiles_walk_in_customer(self):
		item = stock_item(qty=5)
		op = sale_op("walk-in-0000001", self.walk_in, item)
		del op["data"]["customer"]
		ledger.push(self.terminal, [op])
		frappe.db.commit()
		applier.apply(self.terminal.name)
		[row] = self.ledger()
		self.assertEqual(row.status, "Applied", row.error)
		self.assertEqual(frappe.db.get_value("Sales Invoice", row.reference_name, "customer"), WALK_IN)

	def test_a_failed_operation_can_be_corrected_in_desk_and_retried(self):
		item = stock_item(qty=5)
		op = sale_op("fix-me-000001", "nobody at all", item)
		ledger.push(self.terminal, [op])
		frappe.db.commit()
		applier.apply(self.terminal.name)
		[row] = self.ledger()
		self.assertEqual(row.status, "Failed")
		self.assertIn("nobody at all", row.error)
		name = operation_key(self.terminal.name, op["client_id"])
		bad = json.dumps({**op["data"], "items": []})
		self.assertRaises(frappe.ValidationError, ledger.retry, name, bad)
		ledger.retry(name, json.dumps({**op["data"], "customer": self.walk_in}))
		frappe.db.commit()
		applier.apply(self.terminal.name)
		self.assertEqual(self.ledger()[0].status, "Applied")
		# the terminal's own replay still gets the result, not "a different operation"
		self.assertEqual(ledger.push(self.terminal, [op])["results"][0]["status"], "applied")


class TestInterruptedPush(PosTestCase):
	def test_a_dropped_connection_and_a_killed_worker_duplicate_nothing(self):
		item = stock_item(qty=100)
		frappe.db.commit()
		ops = [sale_op(f"drop-{i:08d}", self.walk_in, item) for i in range(30)]
		try:  # the terminal gives up before the answer comes: it cannot know what was stored
			self.call("push", timeout=0.05, terminal=self.terminal.name, operations=ops[:20])
		except requests.Timeout:
			pass
		results = self.push(ops)["results"]  # so it sends everything again
		self.assertEqual({r["status"] for r in results}, {"accepted"})
		self.assertEqual(len(self.ledger()), 30)

		worker = start_worker(burst=False)
		try:
			deadline = time.monotonic() + 120
			while sum(op.status == "Applied" for op in self.ledger()) < 5 and time.monotonic() < deadline:
				time.sleep(0.2)
		finally:
			kill_worker(worker)  # in the middle of applying
		ledger = self.ledger()
		applied = [op for op in ledger if op.status == "Applied"]
		self.assertGreaterEqual(len(applied), 5)
		self.assertEqual(len(self.invoices_of()), len(applied), "nothing half-applied")

		# the dead worker's leases run out; the next apply finishes the batch
		frappe.db.sql(
			"update `tabPOS Operation` set lease_until = %s where terminal = %s and status = 'Applying'",
			(frappe.utils.add_to_date(None, seconds=-1), self.terminal.name),
		)
		frappe.db.commit()
		applier.apply(self.terminal.name)
		ledger = self.ledger()
		self.assertEqual({op.status for op in ledger}, {"Applied"})
		invoices = self.invoices_of()
		self.assertEqual(len(invoices), 30)
		self.assertEqual({op.reference_name for op in ledger}, {i.name for i in invoices})
		self.assertEqual(on_hand(item), 70)

	def test_two_pushes_of_the_same_batch_racing_store_it_once(self):
		from concurrent.futures import ThreadPoolExecutor

		item = stock_item(qty=10)
		frappe.db.commit()
		ops = [sale_op(f"race-{i:08d}", self.walk_in, item) for i in range(10)]
		with ThreadPoolExecutor(4) as pool:
			answers = list(pool.map(lambda _: self.push(ops), range(4)))
		for answer in answers:
			self.assertEqual(len(answer["results"]), 10)
			self.assertTrue(all(r["status"] == "accepted" for r in answer["results"]))
		self.assertEqual(len(self.ledger()), 10)


class TestPosApi(PosTestCase):
	def test_bootstrap_and_pull_then_only_changes(self):
		item = stock_item(qty=7, rate=150)
		frappe.db.commit()
		config = self.call("bootstrap", terminal=self.terminal.name).json()["message"]["config"]
		self.assertEqual(config["warehouse"], WAREHOUSE)
		self.assertEqual(config["payment_modes"], [{"mode_of_payment": "Cash", "default": 1}])

		records, cursor, pages = [], None, 0
		while True:
			page = self.call("pull", terminal=self.terminal.name, cursor=cursor, limit=500).json()["message"]
			records += page["records"]
			cursor, pages = page["cursor"], pages + 1
			if not page["has_more"]:
				break
		by_key = {(r["type"], r["key"]): r["data"] for r in records}
		self.assertEqual(len(by_key), len(records), "no record twice")
		self.assertEqual(by_key[("stock", item)]["actual_qty"], 7)
		self.assertEqual(len(by_key[("item", item)]["barcodes"]), 1)
		self.assertIn(("customer", self.walk_in), by_key)
		self.assertTrue(any(k == ("price", k[1]) and d["item_code"] == item for k, d in by_key.items()))

		# changes since the cursor: a new price, a disabled item, a deleted customer
		frappe.db.set_value("Item Price", {"item_code": item}, "price_list_rate", 175)
		frappe.get_doc("Item", item).update({"disabled": 1}).save()
		gone = customer("to delete")
		frappe.db.commit()
		frappe.delete_doc("Customer", gone)
		frappe.db.commit()
		page = self.call("pull", terminal=self.terminal.name, cursor=cursor, limit=500).json()["message"]
		changed = {(r["type"], r["key"]): r["data"] for r in page["records"]}
		self.assertEqual(changed[("item", item)]["disabled"], 1)
		self.assertIn(175, [d.get("price_list_rate") for d in changed.values()])
		self.assertIn({"type": "customer", "key": gone}, page["deleted"])
		# only what changed lately: since the pass's horizon (what may have committed late comes again)
		lately = frappe.utils.add_to_date(None, seconds=-SETTLE_SECONDS - 60)
		self.assertTrue(all(self.modified_of(*key) >= lately for key in changed), "only what changed")

		# the terminal's setup changes: its old cursor asks for a full resync
		frappe.db.set_value("POS Terminal", self.terminal.name, "price_list", "_Test Price List")
		frappe.db.commit()
		page = self.call("pull", terminal=self.terminal.name, cursor=page["cursor"]).json()["message"]
		self.assertTrue(page["full_resync_required"])
		bad = self.call("pull", terminal=self.terminal.name, cursor="not-a-cursor")
		self.assertEqual(bad.status_code, 400, bad.text)

	def test_stock_that_commits_after_a_later_change_still_comes(self):
		slow_item, fast_item = stock_item(qty=1), stock_item(qty=1)
		frappe.db.commit()
		_, cursor = self.pull_pass(None)
		slow_bin, fast_bin = (
			frappe.db.get_value("Bin", {"item_code": i, "warehouse": WAREHOUSE})
			for i in (slow_item, fast_item)
		)
		# the slow stock transaction stamps its Bin first and commits last
		slow = HeldOpenTransaction(f"frappe.db.set_value('Bin', {slow_bin!r}, 'actual_qty', 42)")
		self.addCleanup(slow.close)
		frappe.db.set_value("Bin", fast_bin, "actual_qty", 43)
		frappe.db.commit()
		seen, cursor = self.pull_pass(cursor)
		self.assertEqual(seen[("stock", fast_item)]["actual_qty"], 43)
		self.assertNotEqual(seen.get(("stock", slow_item), {}).get("actual_qty"), 42)

		slow.commit()
		seen, _ = self.pull_pass(cursor)
		self.assertEqual(seen.get(("stock", slow_item), {}).get("actual_qty"), 42, "the late commit came")

	def pull_pass(self, cursor: str | None) -> tuple[dict, str]:
		"""Pull until has_more is false: {(type, key): data} and the cursor."""
		seen = {}
		for _ in range(100):
			page = self.call("pull", terminal=self.terminal.name, cursor=cursor, limit=500).json()["message"]
			seen.update({(r["type"], r["key"]): r["data"] for r in page["records"]})
			cursor = page["cursor"]
			if not page["has_more"]:
				return seen, cursor
		raise AssertionError("the feed did not end")

	def modified_of(self, kind: str, key: str):
		if kind == "stock":
			return frappe.db.get_value("Bin", {"item_code": key, "warehouse": WAREHOUSE}, "modified")
		return frappe.db.get_value(STREAM_DOCTYPES[kind], key, "modified")

	def test_bad_operations_are_rejected_and_nothing_is_stored(self):
		item = stock_item(qty=1)
		frappe.db.commit()
		good = sale_op("good-00000001", self.walk_in, item)
		bad = [
			{**good, "client_id": "bad"},
			{**good, "client_id": "bad-00000002", "timestamp": "yesterday"},
			{**good, "client_id": "bad-00000003", "data": {**good["data"], "items": []}},
			"not even an object",
		]
		results = self.push([good, *bad])["results"]
		self.assertEqual([r["status"] for r in results], ["accepted", *["rejected"] * 4])
		self.assertEqual(len(self.ledger()), 1)
		reused = {**good, "data": {**good["data"], "customer": "someone else"}}
		self.assertEqual(self.push([reused])["results"][0]["status"], "rejected")
		self.assertIn("already used", self.push([reused])["results"][0]["error"])
		for operations in ("{not json", {"a": 1}, [good] * 501):
			r = self.call("push", terminal=self.terminal.name, operations=operations)
			self.assertIn(r.status_code, (400, 417), r.text)  # 417: Frappe's own argument type check
			self.assertIn("operations", r.json().get("exception", "") + r.text)

	def test_a_terminal_never_applies_as_administrator_or_a_system_manager(self):
		make_api_user("ec-pos-sysman@example.com", [*ROLES, "System Manager"])
		for user in ("Administrator", "ec-pos-sysman@example.com"):
			with self.assertRaisesRegex(frappe.ValidationError, "may not write for a connector"):
				self.make_terminal(api_user=user)
		ledger.push(self.terminal, [sale_op("admin-0000001", self.walk_in, stock_item(qty=5))])
		self.terminal.db_set("api_user", "Administrator", commit=True)
		with self.assertRaisesRegex(frappe.PermissionError, "Administrator may not write"):
			applier.apply(self.terminal.name)
		frappe.db.rollback()
		[row] = self.ledger()
		self.assertEqual(row.status, "Queued")
		self.assertEqual(self.invoices_of(self.terminal), [])

	def test_only_the_terminals_own_enabled_user_gets_in(self):
		_, other = site_http(self.other_key, self.other_secret)
		r = self.call("pull", http=other, terminal=self.terminal.name)
		self.assertEqual(r.status_code, 403, r.text)
		self.assertEqual(self.call("pull", terminal="no such till").status_code, 403)
		self.terminal.db_set("enabled", 0, commit=True)
		self.assertEqual(self.call("push", terminal=self.terminal.name, operations=[]).status_code, 403)
		# one terminal cannot read another's results by guessing client ids
		mine = self.make_terminal()
		frappe.db.commit()
		ledger.push(mine, [sale_op("secret-0000001", self.walk_in, stock_item(qty=1))])
		frappe.db.commit()
		theirs = self.make_terminal(api_user=OTHER_USER)
		frappe.db.commit()
		r = self.call("results", http=other, terminal=theirs.name, client_ids=["secret-0000001"])
		self.assertEqual(r.json()["message"]["results"][0]["status"], "unknown")


class TestLedgerAtScale(PosTestCase):
	def test_a_push_counts_the_open_operations_without_reading_the_applied_ones(self):
		now = frappe.utils.now_datetime()
		rows = [
			(
				operation_key(self.terminal.name, f"old-{i}"),
				self.terminal.name,
				f"old-{i}",
				"customer",
				"Applied",
			)
			for i in range(3000)
		]
		frappe.db.sql(
			"insert into `tabPOS Operation` (name, terminal, client_id, op_type, status, creation, modified) values "
			+ ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(rows)),
			[v for row in rows for v in (*row, now, now)],
		)
		frappe.db.commit()

		def rows_read() -> int:
			status = dict(frappe.db.sql("show session status like 'Handler_read%%'"))
			return sum(int(v) for v in status.values())

		before = rows_read()
		ledger.update_counts(self.terminal.name)
		read = rows_read() - before
		self.assertLess(read, 300, f"updating the counters read {read} rows of a 3,000-row ledger")
		self.assertEqual(frappe.db.get_value("POS Terminal", self.terminal.name, "backlog"), 0)


class TestApplyJobs(PosTestCase):
	"""A push leaves one apply job queued, not one per slot: with one worker, every extra job is a
	Frappe job start (about 0.3 s here) that finds nothing, and a shift's consolidation waits
	behind them on the worker's later queue. Free workers are called in for a big batch."""

	def queued_applies(self) -> list[str]:
		prefix = create_job_id(f"erp_connect:pos:{self.terminal.name}:")
		return [i for i in get_queue("default").get_job_ids() if i.startswith(prefix)]

	def ran_applies(self) -> list[str]:
		prefix = create_job_id(f"erp_connect:pos:{self.terminal.name}:")
		return [i for i in get_queue("default").finished_job_registry.get_job_ids() if i.startswith(prefix)]

	def sales(self, count: int) -> list[dict]:
		# not a stock item: sales that two workers book out of posting order would have ERPNext
		# repost the item's valuation, which it does inline under CI (and then reads invoices
		# that the other worker has not committed yet)
		item = stock_item(is_stock_item=0)
		frappe.db.commit()
		return [sale_op(f"jobs-{i:04d}", self.walk_in, item) for i in range(count)]

	def test_a_push_queues_one_apply_job_and_another_only_while_that_one_runs(self):
		forget_queued_applies([self.terminal.name])
		ledger.queue_appliers(self.terminal.name)
		ledger.queue_appliers(self.terminal.name)  # a second push before a worker took the first
		frappe.db.commit()  # the jobs are queued after the commit
		self.assertEqual(len(self.queued_applies()), 1)
		# a worker takes it: a push now may have committed after its last claim, so one more
		[running] = self.queued_applies()
		job = get_queue("default").fetch_job(running)
		get_queue("default").remove(job)
		job.set_status(JobStatus.STARTED)
		ledger.queue_appliers(self.terminal.name)
		frappe.db.commit()
		self.assertEqual(len(self.queued_applies()), 1)
		self.assertNotEqual(self.queued_applies(), [running])
		job.delete()

	def test_one_busy_worker_applies_a_batch_in_one_job(self):
		forget_queued_applies([self.terminal.name])
		results = self.push(self.sales(25))["results"]
		self.assertEqual({r["status"] for r in results}, {"accepted"})
		start_worker(burst=True).wait(180)  # it stops once the queue is empty
		ledger_ = self.ledger()
		self.assertEqual({op.status for op in ledger_}, {"Applied"}, {op.error for op in ledger_})
		self.assertEqual(len(self.ran_applies()), 1, self.ran_applies())

	def test_an_idle_worker_is_called_in_for_a_big_batch(self):
		forget_queued_applies([self.terminal.name])
		workers = ready_workers(2)
		try:
			self.push(self.sales(60))
			deadline = time.monotonic() + 180
			while {"Queued", "Applying"} & {
				op.status for op in self.ledger()
			} and time.monotonic() < deadline:
				time.sleep(0.2)
		finally:
			stop_workers(workers)
		ledger_ = self.ledger()
		self.assertEqual({op.status for op in ledger_}, {"Applied"}, {op.error for op in ledger_})
		self.assertGreaterEqual(len(self.ran_applies()), 2, "the second worker took part")
