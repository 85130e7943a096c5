"""Offline POS benchmark, both bookings on the same 5-line sales (stock updated, paid in cash):
POS Sales Invoices, and POS Invoices in a shift (opened, sold, closed and consolidated by ERPNext's
merge into Sales Invoices). Each through erp_connect's push, end to end, against the same
documents made in a bare in-process loop, in the same run.

	bench --site test.localhost execute erp_connect.benchmarks.pos.run
	bench --site test.localhost execute erp_connect.benchmarks.pos.run --kwargs "{'invoices': 200, 'blocks': 4}"
	bench --site test.localhost execute erp_connect.benchmarks.pos.run --kwargs "{'bookings': ('POS Invoice with shifts',)}"

Prints, for each booking: the bare in-process rate, the end-to-end rate through the sync with one
RQ worker until every invoice is applied (for shifts: until each closing is consolidated), as a
ratio of the bare rate, and how long each push call takes to answer (accepted durably); then the
same blocks with two RQ workers, and a replay of what was pushed. The bare loop and the
one-worker sync take turns in ``blocks`` blocks each (bare, sync, sync, bare, ...), so the site
growing and the machine's speed drifting during the run favour neither; for shifts a block is a
whole shift. Run it on a test site with no other worker running. The documents it submits stay in
the site (ledger entries are not deleted); its terminals and ledger rows go, and every shift it
opens is closed and consolidated.
"""

import datetime
import time

import frappe

from erp_connect.engine.pos_rules import MAX_BATCH
from erp_connect.services.pos.ledger import operation_key
from erp_connect.testing.base import make_api_user, ready_workers, site_http, stop_workers
from erp_connect.testing.pos import PREFIX, ROLES, WAREHOUSE, customer, ensure_pos_profile, stock_item

USER = "ec-pos-bench@example.com"
CONNECTOR = "_Bench EC pos"
ITEMS = 40  # invoices pick 5 of them, so two workers rarely wait on the same stock rows
LINES = 5


SHIFTS = "POS Invoice with shifts"


def run(invoices: int = 500, blocks: int = 2, bookings: tuple = ("Sales Invoice", SHIFTS)) -> None:
	"""``invoices`` sales of each booking bare and as many through the sync with one worker, each in
	``blocks`` blocks; then ``invoices`` more with two workers."""
	key, secret = make_api_user(USER, ROLES)
	items = [stock_item(qty=1_000_000) for _ in range(ITEMS)]
	buyer = customer("bench")
	frappe.db.commit()
	url, http = site_http(key, secret)
	rows = {}
	for booking in bookings:
		terminal = setup(booking)
		try:
			rows[booking] = measure(url, http, terminal, items, buyer, invoices, blocks)
		finally:
			cleanup(terminal)
		report(invoices, {booking: rows[booking]})  # as soon as measured
	report(invoices, rows)


def measure(url, http, terminal, items, buyer, invoices: int, blocks: int) -> dict:
	shifts = terminal.booking == SHIFTS
	bare_run = bare_shift if shifts else bare_loop
	sizes = [invoices // blocks + (i < invoices % blocks) for i in range(blocks)]
	runs = {"bare": [], "one": []}
	pushed = []
	for i, size in enumerate(sizes):
		for side in ("bare", "one") if i % 2 == 0 else ("one", "bare"):
			if side == "bare":
				runs["bare"].append(bare_run(terminal, items, buyer, size))
			else:
				batch = operations(items, buyer, size, shift=shifts)
				runs["one"].append(push_and_apply(url, http, terminal, batch, workers=1))
				pushed += batch
	# the same blocks again with two workers: shifts of the size the bare ones had (a sale in a
	# shift of 500 took longer than one in a shift of 250)
	two = [
		push_and_apply(url, http, terminal, operations(items, buyer, n, shift=shifts), workers=2)
		for n in sizes
	]
	started = time.perf_counter()
	answer = push(url, http, terminal, pushed)
	replay = time.perf_counter() - started
	if {r["status"] for r in answer["results"]} != {"applied"}:
		raise AssertionError("the replay did not return the original results")
	return {
		"bare": together(runs["bare"]),
		"one": together(runs["one"]),
		"two": together(two),
		"replay": replay,
	}


def together(runs: list[dict]) -> dict:
	"""Blocks of one side as one run: its rate is all its sales over all its time."""
	sales = sum(r["invoices"] for r in runs)
	seconds = sum(r["seconds"] for r in runs)
	return {
		"invoices": sales,
		"seconds": seconds,
		"rate": sales / seconds,
		"rates": [r["rate"] for r in runs],
		"push_seconds": max((r["push_seconds"] for r in runs if "push_seconds" in r), default=None),
	}


def setup(booking: str) -> "frappe.Document":
	if not frappe.db.exists("Connector", CONNECTOR):
		frappe.get_doc(
			{
				"doctype": "Connector",
				"connector_name": CONNECTOR,
				"connector_type": "POS",
				"base_url": "http://127.0.0.1:9",
			}
		).insert(ignore_permissions=True)
	terminal = frappe.get_doc(
		{
			"doctype": "POS Terminal",
			"terminal_name": f"{CONNECTOR} {frappe.generate_hash(length=6)}",
			"connector": CONNECTOR,
			"api_user": USER,
			"pos_profile": ensure_pos_profile(),
			"stock_policy": "Accept and Flag",
			"booking": booking,
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	return terminal


def invoice_lines(items: list[str], n: int) -> list[dict]:
	return [{"item_code": items[(n * LINES + i) % len(items)], "qty": 1, "rate": 100.0} for i in range(LINES)]


def bare_invoice(doctype: str, terminal, items: list[str], buyer: str, n: int) -> "frappe.Document":
	"""Sale ``n`` as a cashier would enter it in ERPNext, not yet inserted."""
	return frappe.get_doc(
		{
			"doctype": doctype,
			"company": terminal.company,
			"customer": buyer,
			"is_pos": 1,
			"pos_profile": terminal.pos_profile,
			"update_stock": 1,
			"set_warehouse": WAREHOUSE,
			"selling_price_list": terminal.price_list,
			"items": [{"warehouse": WAREHOUSE, **line} for line in invoice_lines(items, n)],
			"payments": [{"mode_of_payment": "Cash", "amount": LINES * 100.0}],
		}
	)


def bare_loop(terminal, items: list[str], buyer: str, count: int) -> dict:
	"""The same invoices, inserted and submitted one by one in this process: ERPNext's own cost."""
	started = time.perf_counter()
	for n in range(count):
		invoice = bare_invoice("Sales Invoice", terminal, items, buyer, n)
		invoice.insert()
		invoice.submit()
		frappe.db.commit()
	seconds = time.perf_counter() - started
	return {"invoices": count, "seconds": seconds, "rate": count / seconds}


def bare_shift(terminal, items: list[str], buyer: str, count: int) -> dict:
	"""The same sales as ERPNext's own POS books them, in this process: a POS Opening Entry, the
	POS Invoices, the POS Closing Entry and ERPNext's merge into Sales Invoices."""
	from erpnext.accounts.doctype.pos_closing_entry.pos_closing_entry import (
		make_closing_entry_from_opening,
	)
	from erpnext.accounts.doctype.pos_invoice_merge_log.pos_invoice_merge_log import (
		create_merge_logs,
		get_invoice_customer_map,
	)

	started = time.perf_counter()
	opening = frappe.get_doc(
		{
			"doctype": "POS Opening Entry",
			"company": terminal.company,
			"pos_profile": terminal.pos_profile,
			"user": frappe.session.user,
			"period_start_date": frappe.utils.now_datetime(),
			"balance_details": [{"mode_of_payment": "Cash", "opening_amount": 0}],
		}
	).insert()
	opening.submit()
	frappe.db.commit()
	for n in range(count):
		invoice = bare_invoice("POS Invoice", terminal, items, buyer, n)
		invoice.insert()
		invoice.submit()
		frappe.db.commit()
	closing = make_closing_entry_from_opening(opening)
	for row in closing.payment_reconciliation:
		row.closing_amount = row.expected_amount
	closing.insert()
	closing.on_submit = lambda: None  # merged below, in this process rather than a job
	closing.submit()
	frappe.db.commit()
	create_merge_logs(get_invoice_customer_map(closing.pos_transactions), closing)
	if frappe.db.get_value("POS Closing Entry", closing.name, "status") != "Submitted":
		raise AssertionError(f"the bare consolidation failed; see POS Closing Entry {closing.name}")
	seconds = time.perf_counter() - started
	return {"invoices": count, "seconds": seconds, "rate": count / seconds}


def operations(items: list[str], buyer: str, count: int, shift: bool = False) -> list[dict]:
	now = datetime.datetime.now(datetime.UTC)

	def at(n: int) -> str:
		return (now + datetime.timedelta(milliseconds=n)).isoformat()

	sales = [
		{
			"client_id": frappe.generate_hash(length=24),
			"type": "sales_invoice",
			"timestamp": at(n + 1),
			"data": {
				"customer": buyer,
				"items": invoice_lines(items, n),
				"payments": [{"mode_of_payment": "Cash", "amount": LINES * 100.0}],
			},
		}
		for n in range(count)
	]
	if not shift:
		return sales
	opening = frappe.generate_hash(length=24)
	for sale in sales:
		sale["data"]["shift_client_id"] = opening
	cash = [{"mode_of_payment": "Cash", "amount": count * LINES * 100.0}]
	return [
		{"client_id": opening, "type": "shift_open", "timestamp": at(0), "data": {"opening_amounts": []}},
		*sales,
		{
			"client_id": frappe.generate_hash(length=24),
			"type": "shift_close",
			"timestamp": at(count + 1),
			"data": {"shift_client_id": opening, "closing_amounts": cash},
		},
	]


def push(url, http, terminal, ops: list[dict]) -> dict:
	"""Push in batches of at most MAX_BATCH, as a terminal does; the results of all of them."""
	answer = {"results": [], "accepted": 0}
	for start in range(0, len(ops), MAX_BATCH):
		r = http.post(
			f"{url}/api/method/erp_connect.api.pos.push",
			json={"terminal": terminal.name, "operations": ops[start : start + MAX_BATCH]},
			timeout=120,
		)
		r.raise_for_status()
		message = r.json()["message"]
		answer["results"] += message["results"]
		answer["accepted"] += message["accepted"]
	return answer


def push_and_apply(url, http, terminal, ops: list[dict], workers: int) -> dict:
	"""Workers already running (as in production); time the push, then until all are applied
	(and, for a shift, until its closing is consolidated)."""
	processes = ready_workers(workers, queue="default,long")
	try:
		started = time.perf_counter()
		answer = push(url, http, terminal, ops)
		pushed = time.perf_counter() - started
		if answer["accepted"] != len(ops):
			raise AssertionError(f"expected {len(ops)} accepted, got {answer['accepted']}")
		keys = [operation_key(terminal.name, op["client_id"]) for op in ops]
		while True:
			frappe.db.rollback()
			left = frappe.db.count(
				"POS Operation", {"name": ("in", keys), "status": ("in", ("Queued", "Applying"))}
			)
			if not left and not closing_pending(keys):
				break
			time.sleep(0.25)
		seconds = time.perf_counter() - started
	finally:
		stop_workers(processes)
	failed = frappe.db.count("POS Operation", {"name": ("in", keys), "status": "Failed"})
	if failed:
		raise AssertionError(f"{failed} invoices failed; see the POS Operation list")
	sales = sum(op["type"] == "sales_invoice" for op in ops)  # a shift's open and close are not sales
	return {"invoices": sales, "push_seconds": pushed, "seconds": seconds, "rate": sales / seconds}


def closing_pending(keys: list[str]) -> bool:
	"""Whether the batch's closing (if any) is still being consolidated."""
	closing = frappe.db.get_value(
		"POS Operation", {"name": ("in", keys), "op_type": "shift_close"}, "reference_name"
	)
	status = closing and frappe.db.get_value("POS Closing Entry", closing, "status")
	if status == "Failed":
		raise AssertionError(f"the consolidation failed; see POS Closing Entry {closing}")
	return status == "Queued"


def cleanup(terminal) -> None:
	frappe.db.rollback()
	frappe.db.delete("POS Operation", {"terminal": terminal.name})
	frappe.db.delete("POS Terminal", terminal.name)
	frappe.db.commit()


def report(invoices: int, rows: dict) -> None:
	print()
	print(
		f"Offline POS, {invoices} sales of {LINES} lines, stock updated, paid in cash ({PREFIX.strip()} items)"
	)
	print("  (ratio: end-to-end rate through the sync / bare in-process rate of the same booking)")
	labels = {
		"Sales Invoice": "POS Sales Invoices",
		SHIFTS: "POS Invoices in a shift, closing and merge included",
	}
	for booking, r in rows.items():
		base = r["bare"]["rate"]
		print(f"  {labels[booking]}")
		print(
			f"    bare in-process, {r['bare']['invoices']} sales     {base:6.2f} sales/s   1.00x"
			f"   (blocks: {blocks_of(r['bare'])})"
		)
		for label, run in (("1 RQ worker ", r["one"]), ("2 RQ workers", r["two"])):
			print(
				f"    sync, {label}, {run['invoices']} sales  {run['rate']:6.2f} sales/s   {run['rate'] / base:.2f}x"
				f"   (blocks: {blocks_of(run)}; each push answered within {run['push_seconds']:.2f} s)"
			)
		print(
			f"    replay of the {r['one']['invoices']} sales pushed with 1 worker (results returned, nothing"
			f" applied again): {r['replay']:5.2f} s"
		)
	si, shifts = rows.get("Sales Invoice"), rows.get(SHIFTS)
	if si and shifts:
		print("  side by side          Sales Invoice   with shifts")
		for key, label in (("one", "1 RQ worker "), ("two", "2 RQ workers")):
			print(
				f"    {label}         {si[key]['rate'] / si['bare']['rate']:5.2f}x"
				f"          {shifts[key]['rate'] / shifts['bare']['rate']:5.2f}x"
			)


def blocks_of(run: dict) -> str:
	return ", ".join(f"{rate:.2f}" for rate in run["rates"])
