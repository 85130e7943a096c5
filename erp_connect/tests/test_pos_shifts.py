"""Offline POS with shifts (POS Terminal Booking "POS Invoice with shifts") in a real site: POS
Opening Entries, POS Invoices, POS Closing Entries and ERPNext's own consolidation into Sales
Invoices, over real HTTP with the reference client library and real RQ workers.

Each test has its own API user (ERPNext closes a shift with the POS Invoices of its profile and
user); what a test leaves unfinished is cancelled afterwards (testing/pos.py settle_open_shifts).
"""

import datetime
import os
import tempfile
import time

import frappe
from frappe.utils import convert_utc_to_system_timezone, flt

from erp_connect.client.pos import PosClient
from erp_connect.services.pos import applier, ledger, shifts
from erp_connect.services.pos.ledger import operation_key
from erp_connect.testing.base import TEST_PREFIX, kill_worker, make_api_user, site_http, start_worker
from erp_connect.testing.pos import (
	ROLES,
	WAREHOUSE,
	PosTestCase,
	cash,
	company,
	forget_queued_consolidations,
	on_hand,
	receive,
	sale_op,
	settle_open_shifts,
	shift_op,
	stock_item,
)

SHIFTS = "POS Invoice with shifts"


def stocked(qty: float) -> str:
	"""An item with ``qty`` in stock since yesterday: sales dated hours ago find it there."""
	item = stock_item(rate=10)
	receive(item, qty, days_ago=1)
	return item


def hours_ago(hours: float) -> datetime.datetime:
	return datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=hours)


class FakeClock:
	"""A terminal's clock, set back to when it sold offline."""

	def __init__(self, now: float):
		self.now = now

	def __call__(self) -> float:
		self.now += 1
		return self.now


class ShiftTestCase(PosTestCase):
	def setUp(self):
		super().setUp()
		self.addCleanup(forget_queued_consolidations)
		self.addCleanup(settle_open_shifts)

	def shift_terminal(self, label: str):
		"""A terminal with shifts and its own API user; (terminal, api key, api secret)."""
		user = f"ec-pos-shift-{label}@example.com"
		key, secret = make_api_user(user, ROLES)
		term = frappe.get_doc(
			{
				"doctype": "POS Terminal",
				"terminal_name": TEST_PREFIX + "Shift Till " + frappe.generate_hash(length=6),
				"connector": self.connector.name,
				"api_user": user,
				"pos_profile": self.profile,
				"stock_policy": "Block",
				"booking": SHIFTS,
			}
		).insert()
		frappe.db.commit()
		return term, key, secret

	def client(self, term, key, secret, clock=time.time) -> PosClient:
		_, session = site_http()
		db_path = os.path.join(tempfile.mkdtemp(), "till.sqlite")
		return PosClient(self.url, key, secret, term.name, db_path, session=session, clock=clock)

	def op_row(self, term, client_id: str):
		frappe.db.rollback()
		return frappe.db.get_value(
			"POS Operation",
			operation_key(term.name, client_id),
			["status", "reference_doctype", "reference_name", "flag", "error"],
			as_dict=True,
		)

	def push_and_apply(self, term, ops: list[dict]) -> None:
		ledger.push(term, ops)
		frappe.db.commit()
		applier.apply(term.name)

	def wait_for_consolidation(self, closings: list[str], timeout: float = 180) -> None:
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			frappe.db.rollback()
			statuses = [frappe.db.get_value("POS Closing Entry", c, "status") for c in closings]
			if all(s in ("Submitted", "Failed") for s in statuses):
				return
			time.sleep(0.5)
		raise AssertionError(f"closings not consolidated: {statuses}")

	def consolidated_total(self, closing: str) -> float:
		logs = frappe.get_all(
			"POS Invoice Merge Log",
			{"pos_closing_entry": closing, "docstatus": 1},
			["consolidated_invoice", "consolidated_credit_note"],
		)
		self.assertTrue(logs, f"no merge log for {closing}")
		invoices = {n for log in logs for n in (log.consolidated_invoice, log.consolidated_credit_note) if n}
		for name in invoices:
			self.assertEqual(
				frappe.db.get_value("Sales Invoice", name, ["docstatus", "is_consolidated"]), (1, 1)
			)
		return sum(frappe.db.get_value("Sales Invoice", n, "grand_total") for n in invoices)


class TestADayWithShifts(ShiftTestCase):
	def test_two_terminals_one_offline_for_hours_close_their_shifts_and_everything_matches(self):
		item1, item2 = stocked(100), stocked(100)
		frappe.db.commit()
		till_a, till_b = self.shift_terminal("a"), self.shift_terminal("b")
		a = self.client(*till_a)
		clock_b = FakeClock(time.time() - 6 * 3600)  # b lost its connection six hours ago
		b = self.client(*till_b, clock=clock_b)
		a.bootstrap()
		b.bootstrap()
		b.base_url = "http://127.0.0.1:9"

		def sell(client, item, qty):
			return client.record_sale(
				[{"item_code": item, "qty": qty, "rate": 10.0}], cash(qty * 10.0), customer=self.walk_in
			)

		# b sells all day without a connection
		b.open_shift(cash(50))
		for i in range(12):
			sell(b, (item1, item2)[i % 2], 1)
		b.close_shift(cash(167.5))  # 2.50 short in the drawer
		self.assertFalse(b.sync()["ok"])

		# a is online: opens, sells, takes one back, closes
		a.open_shift(cash(100))
		sold_a = [sell(a, item1, 2) for _ in range(3)]
		a.record_return(
			[{"item_code": item1, "qty": 1, "rate": 10.0}],
			cash(10.0),
			return_against_client_id=sold_a[0],
			customer=self.walk_in,
		)
		a.close_shift(cash(150))
		worker = start_worker(burst=False, queue="default,long")
		try:
			a.sync_until_idle(timeout=300)
			b.base_url, clock_b.now = self.url, time.time()  # b is back
			b.sync_until_idle(timeout=300)
			ops = {
				t.name: {op["client_id"]: op for op in c.operations()}
				for t, c in ((till_a[0], a), (till_b[0], b))
			}
			closings = [
				next(op["name"] for op in o.values() if op["type"] == "shift_close") for o in ops.values()
			]
			self.wait_for_consolidation(closings)
		finally:
			kill_worker(worker)
		for client in (a, b):
			self.assertEqual({op["status"] for op in client.operations()}, {"applied"}, client.operations())

		# what ERPNext's own POS would have left: opening, POS Invoices, closing, merged invoices
		closing_a, closing_b = (frappe.get_doc("POS Closing Entry", c) for c in closings)
		for closing, count, total in ((closing_a, 4, 50.0), (closing_b, 12, 120.0)):
			self.assertEqual(closing.status, "Submitted", closing.error_message)
			self.assertEqual(len(closing.pos_transactions), count)
			self.assertAlmostEqual(closing.grand_total, total)
			self.assertEqual(
				frappe.db.get_value("POS Opening Entry", closing.pos_opening_entry, "status"), "Closed"
			)
			invoices = [r.pos_invoice for r in closing.pos_transactions]
			self.assertEqual(
				set(frappe.get_all("POS Invoice", {"name": ("in", invoices)}, pluck="status")),
				{"Consolidated"},
			)
			self.assertAlmostEqual(self.consolidated_total(closing.name), total)
		returned = frappe.get_all(
			"POS Invoice",
			{"name": ("in", [r.pos_invoice for r in closing_a.pos_transactions]), "is_return": 1},
			["return_against"],
		)
		self.assertEqual([r.return_against for r in returned], [ops[till_a[0].name][sold_a[0]]["name"]])

		# cash: expected = opening + what was paid, counted as the terminal said, the difference kept
		[row_a], [row_b] = closing_a.payment_reconciliation, closing_b.payment_reconciliation
		self.assertEqual(
			(row_a.opening_amount, row_a.expected_amount, row_a.closing_amount, row_a.difference),
			(100, 150, 150, 0),
		)
		self.assertEqual(
			(row_b.opening_amount, row_b.expected_amount, row_b.closing_amount, row_b.difference),
			(50, 170, 167.5, -2.5),
		)
		close_b = self.op_row(
			till_b[0], next(c for c, op in ops[till_b[0].name].items() if op["type"] == "shift_close")
		)
		self.assertEqual(close_b.status, "Flagged")
		self.assertIn("Cash -2.50", close_b.flag)
		self.assertEqual(
			self.op_row(
				till_a[0], next(c for c, op in ops[till_a[0].name].items() if op["type"] == "shift_close")
			).status,
			"Applied",
		)

		# stock moved once, by the consolidated invoices: exactly what was sold and returned
		self.assertEqual(on_hand(item1), 100 - 6 + 1 - 6)
		self.assertEqual(on_hand(item2), 100 - 6)
		# b's sales are dated when they were sold, hours ago
		first_b = frappe.get_doc("POS Invoice", closing_b.pos_transactions[0].pos_invoice)
		sold_at = datetime.datetime.combine(first_b.posting_date, datetime.time()) + first_b.posting_time
		self.assertLess(sold_at, frappe.utils.add_to_date(None, hours=-5))

		# every operation of both terminals again: their results, nothing booked twice
		counts = self.document_counts(closings)
		for term, client in ((till_a[0], a), (till_b[0], b)):
			batch = [
				{
					"client_id": op["client_id"],
					"type": op["type"],
					"timestamp": op["timestamp"],
					"data": op["data"],
				}
				for op in client.operations()
			]
			results = ledger.push(term, batch)["results"]
			frappe.db.commit()
			self.assertEqual({r["status"] for r in results}, {"applied"})
			self.assertEqual(
				{r["client_id"]: r["name"] for r in results},
				{c: op["name"] for c, op in ops[term.name].items()},
			)
		applier.apply(till_a[0].name)
		self.assertEqual(self.document_counts(closings), counts)
		self.assertEqual(on_hand(item1), 89)

	def document_counts(self, closings: list[str]) -> dict:
		frappe.db.rollback()
		openings = [frappe.db.get_value("POS Closing Entry", c, "pos_opening_entry") for c in closings]
		users = [frappe.db.get_value("POS Opening Entry", o, "user") for o in openings]
		return {
			"opening": frappe.db.count("POS Opening Entry", {"user": ("in", users)}),
			"closing": frappe.db.count("POS Closing Entry", {"user": ("in", users), "docstatus": 1}),
			"pos_invoice": frappe.db.count("POS Invoice", {"owner": ("in", users), "docstatus": 1}),
			"merge_log": frappe.db.count("POS Invoice Merge Log", {"pos_closing_entry": ("in", closings)}),
		}


class TestShiftRaces(ShiftTestCase):
	def test_two_workers_and_a_killed_one_book_each_shift_document_once(self):
		item = stocked(100)
		term, _, _ = self.shift_terminal("race")
		now = hours_ago(1)
		at = lambda seconds: now + datetime.timedelta(seconds=seconds)  # noqa: E731
		ops = [shift_op("race-open-0001", "shift_open", {"opening_amounts": cash(20)}, at(0))]
		for i in range(30):
			op = sale_op(f"race-sale-{i:04d}", self.walk_in, item, rate=10)
			op["timestamp"] = at(1 + i).isoformat()
			op["data"]["shift_client_id"] = "race-open-0001"
			ops.append(op)
		ops.append(
			shift_op(
				"race-close-0001",
				"shift_close",
				{"shift_client_id": "race-open-0001", "closing_amounts": cash(320)},
				at(60),
			)
		)
		workers = [start_worker(burst=False, queue="default") for _ in range(2)]
		try:
			for answer in (ledger.push(term, ops), ledger.push(term, ops[::-1])):
				frappe.db.commit()
				self.assertEqual({r["status"] for r in answer["results"]}, {"accepted"})
			deadline = time.monotonic() + 120
			while time.monotonic() < deadline:
				done = [op for op in self.ledger(term) if op.status == "Applied"]
				if len(done) >= 8:
					break
				time.sleep(0.2)
		finally:
			for worker in workers:
				kill_worker(worker)  # while they apply
		frappe.db.sql(
			"update `tabPOS Operation` set lease_until = %s where terminal = %s and status = 'Applying'",
			(frappe.utils.add_to_date(None, seconds=-1), term.name),
		)
		frappe.db.commit()
		applier.apply(term.name)
		rows = self.ledger(term)
		self.assertEqual(
			{r.status for r in rows}, {"Applied"}, [r for r in rows if r.status != "Applied"][:2]
		)
		self.assertEqual(len({r.reference_name for r in rows}), 32, "one document per operation")

		close = self.op_row(term, "race-close-0001")
		shifts.consolidate(close.reference_name)
		closing = frappe.get_doc("POS Closing Entry", close.reference_name)
		self.assertEqual(closing.status, "Submitted", closing.error_message)
		self.assertEqual(len(closing.pos_transactions), 30, "the close came after every sale of the shift")
		self.assertEqual(closing.payment_reconciliation[0].expected_amount, 320)
		self.assertEqual(
			frappe.db.count("POS Closing Entry", {"pos_opening_entry": closing.pos_opening_entry}), 1
		)
		shifts.consolidate(closing.name)  # a second run (a duplicate job) merges nothing again
		self.assertEqual(frappe.db.count("POS Invoice Merge Log", {"pos_closing_entry": closing.name}), 1)
		self.assertEqual(on_hand(item), 70)
		self.assertEqual({r["status"] for r in ledger.push(term, ops)["results"]}, {"applied"})


class TestLateAndOutsideShifts(ShiftTestCase):
	def test_a_sale_that_arrives_after_its_shift_was_closed_in_desk_is_booked_and_flagged(self):
		item = stocked(20)
		term, _, _ = self.shift_terminal("late")
		sold = hours_ago(3)
		self.push_and_apply(
			term, [shift_op("late-open-0001", "shift_open", {"opening_amounts": cash(0)}, sold)]
		)
		first = sale_op("late-sale-0001", self.walk_in, item, rate=10)
		first["data"]["shift_client_id"] = "late-open-0001"
		first["timestamp"] = (sold + datetime.timedelta(minutes=1)).isoformat()
		self.push_and_apply(term, [first])
		opening = self.op_row(term, "late-open-0001").reference_name

		# the manager closes the till's shift in Desk while the till is offline
		from erpnext.accounts.doctype.pos_closing_entry.pos_closing_entry import (
			make_closing_entry_from_opening,
		)

		closing = make_closing_entry_from_opening(frappe.get_doc("POS Opening Entry", opening))
		for row in closing.payment_reconciliation:
			row.closing_amount = row.expected_amount
		closing.insert()
		closing.submit()  # ERPNext consolidates at once (fewer than 10 invoices)
		frappe.db.commit()

		# the till comes back with a sale made before the closing, a return of the first sale, its close
		late = sale_op("late-sale-0002", self.walk_in, item, qty=2, rate=10)
		late["data"]["shift_client_id"] = "late-open-0001"
		late["timestamp"] = (sold + datetime.timedelta(minutes=30)).isoformat()
		back = {
			**shift_op(
				"late-return-01",
				"sales_invoice",
				{
					"customer": self.walk_in,
					"items": [{"item_code": item, "qty": -1, "rate": 10}],
					"payments": cash(-10),
					"is_return": 1,
					"return_against_client_id": "late-sale-0001",
					"shift_client_id": "late-open-0001",
				},
				sold + datetime.timedelta(minutes=31),
			)
		}
		close = shift_op(
			"late-close-0001",
			"shift_close",
			{"shift_client_id": "late-open-0001", "closing_amounts": cash(20)},
			sold + datetime.timedelta(minutes=40),
		)
		self.push_and_apply(term, [late, back, close])

		row = self.op_row(term, "late-sale-0002")
		self.assertEqual((row.status, row.reference_doctype), ("Flagged", "Sales Invoice"), row.error)
		self.assertIn(f"closed by {closing.name}", row.flag)
		invoice = frappe.get_doc("Sales Invoice", row.reference_name)
		self.assertEqual(
			(invoice.is_pos, invoice.update_stock, invoice.docstatus, invoice.grand_total), (1, 1, 1, 20)
		)
		local = convert_utc_to_system_timezone((sold + datetime.timedelta(minutes=30)).replace(tzinfo=None))
		self.assertEqual(invoice.posting_date, local.date())
		self.assertTrue(frappe.db.exists("ToDo", {"reference_name": invoice.name, "status": "Open"}))

		ret = self.op_row(term, "late-return-01")
		self.assertEqual((ret.status, ret.reference_doctype), ("Flagged", "Sales Invoice"), ret.error)
		consolidated = frappe.db.get_value(
			"POS Invoice", self.op_row(term, "late-sale-0001").reference_name, "consolidated_invoice"
		)
		self.assertEqual(
			frappe.db.get_value("Sales Invoice", ret.reference_name, ["is_return", "return_against"]),
			(1, consolidated),
		)

		end = self.op_row(term, "late-close-0001")
		self.assertEqual((end.status, end.reference_name), ("Flagged", opening))
		self.assertIn(f"already closed by {closing.name}", end.flag)
		shifts.sweep()  # a closing made in Desk is ERPNext's own: the flag stays
		self.assertEqual(self.op_row(term, "late-close-0001").flag, end.flag)
		self.assertEqual(
			frappe.db.count("POS Closing Entry", {"pos_opening_entry": opening, "docstatus": 1}), 1
		)
		self.assertEqual(on_hand(item), 20 - 1 - 2 + 1)

	def test_a_sale_in_no_shift_is_booked_as_a_flagged_sales_invoice(self):
		item = stock_item(qty=5, rate=10)
		term, _, _ = self.shift_terminal("none")
		self.push_and_apply(term, [sale_op("no-shift-00001", self.walk_in, item, rate=10)])
		row = self.op_row(term, "no-shift-00001")
		self.assertEqual((row.status, row.reference_doctype), ("Flagged", "Sales Invoice"), row.error)
		self.assertIn("names no shift", row.flag)
		self.assertEqual(on_hand(item), 4)

	def test_a_terminal_booking_sales_invoices_refuses_shifts(self):
		item = stock_item(qty=5, rate=10)
		sale = sale_op("si-shift-sale1", self.walk_in, item)
		sale["data"]["shift_client_id"] = "si-shift-open1"
		self.push_and_apply(
			self.terminal, [shift_op("si-shift-open1", "shift_open", {"opening_amounts": []}), sale]
		)
		rows = {r.client_id: r for r in self.ledger()}
		self.assertEqual(rows["si-shift-open1"].status, "Failed")
		self.assertIn("books Sales Invoices", rows["si-shift-open1"].error)
		self.assertEqual(rows["si-shift-sale1"].status, "Failed")
		self.assertIn("si-shift-open1 failed", rows["si-shift-sale1"].error)
		self.assertEqual(on_hand(item), 5)

	def test_two_shift_terminals_of_one_profile_and_user_are_refused(self):
		term, _, _ = self.shift_terminal("twin")
		twin = frappe.get_doc({**term.as_dict(), "name": None, "terminal_name": term.terminal_name + " 2"})
		with self.assertRaisesRegex(frappe.ValidationError, "already books shifts"):
			twin.insert()


class TestFailingConsolidation(ShiftTestCase):
	def test_a_failed_consolidation_is_shown_and_retry_merges_it(self):
		item = stocked(5)
		term, _, _ = self.shift_terminal("fail")
		sold = hours_ago(2)
		sale = sale_op("fail-sale-0001", self.walk_in, item, qty=5, rate=10)
		sale["data"]["shift_client_id"] = "fail-open-0001"
		sale["timestamp"] = (sold + datetime.timedelta(minutes=1)).isoformat()
		self.push_and_apply(
			term, [shift_op("fail-open-0001", "shift_open", {"opening_amounts": cash(0)}, sold), sale]
		)
		self.assertEqual(self.op_row(term, "fail-sale-0001").status, "Applied")
		# the stock the shift sold leaves by another door before the shift is merged
		issue = frappe.get_doc(
			{
				"doctype": "Stock Entry",
				"company": company(),
				"stock_entry_type": "Material Issue",
				"items": [{"item_code": item, "qty": 5, "s_warehouse": WAREHOUSE, "basic_rate": 10}],
			}
		).insert()
		issue.submit()
		frappe.db.commit()
		self.push_and_apply(
			term,
			[
				shift_op(
					"fail-close-001",
					"shift_close",
					{"shift_client_id": "fail-open-0001", "closing_amounts": cash(50)},
				)
			],
		)
		close = self.op_row(term, "fail-close-001")
		self.assertEqual(frappe.db.get_value("POS Closing Entry", close.reference_name, "status"), "Queued")
		shifts.consolidate(close.reference_name)  # what the queued job does

		closing = frappe.get_doc("POS Closing Entry", close.reference_name)
		self.assertEqual(closing.status, "Failed")
		self.assertTrue(closing.error_message)
		close = self.op_row(term, "fail-close-001")
		self.assertEqual(close.status, "Flagged")
		self.assertIn("consolidation failed", close.flag)
		self.assertEqual(frappe.db.get_value("POS Terminal", term.name, "flagged"), 1)
		self.assertEqual(frappe.db.count("POS Invoice Merge Log", {"pos_closing_entry": closing.name}), 0)
		self.assertEqual(on_hand(item), 0)

		# found: the stock was there before the sale; Retry Consolidation in the operation's form
		receive(item, 5, days_ago=1)
		frappe.db.commit()
		op = frappe.get_doc("POS Operation", operation_key(term.name, "fail-close-001"))
		op.retry_consolidation()
		frappe.db.commit()
		start_worker(burst=True, queue="long").wait(120)
		closing.reload()
		self.assertEqual(closing.status, "Submitted", closing.error_message)
		close = self.op_row(term, "fail-close-001")
		self.assertEqual((close.status, close.flag), ("Applied", None))
		self.assertEqual(frappe.db.get_value("POS Terminal", term.name, "flagged"), 0)
		self.assertEqual(self.consolidated_total(closing.name), 50)
		self.assertEqual(on_hand(item), 0)
		self.assertRaisesRegex(frappe.ValidationError, "Only a closing", op.retry_consolidation)
		self.assertEqual(flt(closing.payment_reconciliation[0].difference), 0)
