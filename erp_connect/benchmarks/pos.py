"""Offline POS benchmark: 5-line POS Sales Invoices (stock updated, paid in cash) through
erp_connect's push, against the same invoices inserted and submitted in a bare in-process loop,
in the same run.

	bench --site test.localhost execute erp_connect.benchmarks.pos.run
	bench --site test.localhost execute erp_connect.benchmarks.pos.run --kwargs "{'invoices': 200}"

Prints: how long the push call takes to answer (accepted durably), the end-to-end rate until every
invoice is applied with one and with two RQ workers, and a replay of the whole batch. Run it on a
test site with no other worker running; the invoices it submits stay in the site.
"""

import datetime
import os
import signal
import time

import frappe

from erp_connect.install import CONNECT_API_USER
from erp_connect.services.pos.ledger import operation_key
from erp_connect.testing.base import make_api_user, site_http, start_worker
from erp_connect.testing.pos import PREFIX, WAREHOUSE, customer, ensure_pos_profile, stock_item

USER = "ec-pos-bench@example.com"
CONNECTOR = "_Bench EC pos"
ITEMS = 40  # invoices pick 5 of them, so two workers rarely wait on the same stock rows
LINES = 5


def run(invoices: int = 500, bare: int = 100) -> None:
	key, secret = make_api_user(
		USER, [CONNECT_API_USER, "Sales User", "Accounts User", "Stock User", "Sales Master Manager"]
	)
	terminal = setup()
	items = [stock_item(qty=1_000_000) for _ in range(ITEMS)]
	buyer = customer("bench")
	frappe.db.commit()
	url, http = site_http(key, secret)
	try:
		baseline = bare_loop(terminal, items, buyer, bare)
		first_batch = operations(items, buyer, invoices)
		one = push_and_apply(url, http, terminal, first_batch, workers=1)
		two = push_and_apply(url, http, terminal, operations(items, buyer, invoices), workers=2)
		started = time.perf_counter()
		answer = push(url, http, terminal, first_batch)
		replay = time.perf_counter() - started
		if {r["status"] for r in answer["results"]} != {"applied"}:
			raise AssertionError("the replay did not return the original results")
		report(invoices, baseline, one, two, replay)
	finally:
		cleanup(terminal)


def setup() -> "frappe.Document":
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
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	return terminal


def invoice_lines(items: list[str], n: int) -> list[dict]:
	return [{"item_code": items[(n * LINES + i) % len(items)], "qty": 1, "rate": 100.0} for i in range(LINES)]


def bare_loop(terminal, items: list[str], buyer: str, count: int) -> dict:
	"""The same invoices, inserted and submitted one by one in this process: ERPNext's own cost."""
	started = time.perf_counter()
	for n in range(count):
		invoice = frappe.get_doc(
			{
				"doctype": "Sales Invoice",
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
		invoice.insert()
		invoice.submit()
		frappe.db.commit()
	seconds = time.perf_counter() - started
	return {"invoices": count, "seconds": seconds, "rate": count / seconds}


def operations(items: list[str], buyer: str, count: int) -> list[dict]:
	now = datetime.datetime.now(datetime.UTC)
	return [
		{
			"client_id": frappe.generate_hash(length=24),
			"type": "sales_invoice",
			"timestamp": (now + datetime.timedelta(milliseconds=n)).isoformat(),
			"data": {
				"customer": buyer,
				"items": invoice_lines(items, n),
				"payments": [{"mode_of_payment": "Cash", "amount": LINES * 100.0}],
			},
		}
		for n in range(count)
	]


def push(url, http, terminal, ops: list[dict]) -> dict:
	r = http.post(
		f"{url}/api/method/erp_connect.api.pos.push",
		json={"terminal": terminal.name, "operations": ops},
		timeout=120,
	)
	r.raise_for_status()
	return r.json()["message"]


def push_and_apply(url, http, terminal, ops: list[dict], workers: int) -> dict:
	"""Workers already running (as in production); time the push, then until all are applied."""
	processes = [start_worker(burst=False) for _ in range(workers)]
	time.sleep(8)  # let them import Frappe and start listening
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
			if not left:
				break
			time.sleep(0.25)
		seconds = time.perf_counter() - started
	finally:
		for process in processes:
			os.kill(process.pid, signal.SIGTERM)  # a warm shutdown: the worker finishes nothing more
			process.wait(30)
	failed = frappe.db.count("POS Operation", {"name": ("in", keys), "status": "Failed"})
	if failed:
		raise AssertionError(f"{failed} invoices failed; see the POS Operation list")
	return {"invoices": len(ops), "push_seconds": pushed, "seconds": seconds, "rate": len(ops) / seconds}


def cleanup(terminal) -> None:
	frappe.db.rollback()
	frappe.db.delete("POS Operation", {"terminal": terminal.name})
	frappe.db.delete("POS Terminal", terminal.name)
	frappe.db.commit()


def report(invoices: int, bare: dict, one: dict, two: dict, replay: float) -> None:
	base = bare["rate"]
	print()
	print(f"POS Sales Invoices, {LINES} lines, stock updated, paid in cash ({PREFIX.strip()} items)")
	print(f"  bare in-process insert + submit, {bare['invoices']} invoices   {base:6.2f} invoices/s   1.00x")
	for label, r in (("1 RQ worker ", one), ("2 RQ workers", two)):
		print(
			f"  push of {invoices}, {label}: answered in {r['push_seconds']:5.2f} s; all applied after"
			f" {r['seconds']:6.1f} s = {r['rate']:6.2f} invoices/s   {r['rate'] / base:.2f}x"
		)
	print(f"  two workers vs one: {two['rate'] / one['rate']:.2f}x")
	print(
		f"  replay of the first {invoices} (every result returned, nothing applied again): {replay:5.2f} s,"
		f" {one['seconds'] / replay:.0f}x faster than the first push end to end"
	)
