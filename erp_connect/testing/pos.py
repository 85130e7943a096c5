"""Fixtures for offline POS sync, shared by the tests and the benchmark: a POS Profile, stock
items with a price and stock, customers. Names start with "_Test POS", apart from the names other
tests count, because submitted sales stay in the site."""

import datetime

import frappe
import requests

from erp_connect.install import CONNECT_API_USER
from erp_connect.testing.base import (
	TEST_PREFIX,
	ConnectTestCase,
	company,
	make_api_user,
	make_customer,
	site_http,
)
from erp_connect.testing.cleanup import OURS, delete_test_data

PREFIX = "_Test POS "
WAREHOUSE = "Stores - WP"


WALK_IN = PREFIX + "Walk-in"


def ensure_pos_profile() -> str:
	"""The test POS Profile: the test warehouse and price list, cash, and a walk-in customer for
	sales that name none."""
	name = PREFIX + "Profile"
	if not frappe.db.exists("Customer", WALK_IN):
		frappe.get_doc(
			{
				"doctype": "Customer",
				"customer_name": WALK_IN,
				"customer_group": "All Customer Groups",
				"territory": "All Territories",
			}
		).insert(ignore_permissions=True)
	if frappe.db.exists("POS Profile", name):
		frappe.db.set_value("POS Profile", name, "customer", WALK_IN)
	else:
		frappe.get_doc(
			{
				"doctype": "POS Profile",
				"name": name,
				"company": company(),
				"warehouse": WAREHOUSE,
				"selling_price_list": "Standard Selling",
				"currency": "USD",
				"write_off_account": "Write Off - WP",
				"write_off_cost_center": "Main - WP",
				"payments": [{"mode_of_payment": "Cash", "default": 1}],
				"customer": WALK_IN,
			}
		).insert(ignore_permissions=True)
	return name


def stock_item(qty: float = 0, rate: float = 100, kind: str = "Item", **fields) -> str:
	"""A fresh stock item (with ``fields`` set) with a selling price and ``qty`` units in the
	terminal's warehouse."""
	code = PREFIX + kind + " " + frappe.generate_hash(length=8)
	frappe.get_doc(
		{
			"doctype": "Item",
			"item_code": code,
			"item_group": "All Item Groups",
			"stock_uom": "Nos",
			"is_stock_item": 1,
			"valuation_rate": 10,
			"barcodes": [{"barcode": frappe.generate_hash(length=12)}],
			**fields,
		}
	).insert(ignore_permissions=True)
	selling_price(code, rate)
	if qty:
		receive(code, qty)
	return code


def stock_sales_order() -> "frappe.Document":
	"""A submitted Sales Order of a new customer: 2 of a fresh stock item that has 5 in the warehouse."""
	order = frappe.get_doc(
		{
			"doctype": "Sales Order",
			"company": company(),
			"customer": make_customer().name,
			"delivery_date": frappe.utils.add_days(frappe.utils.nowdate(), 3),
			"items": [{"item_code": stock_item(qty=5), "qty": 2, "rate": 10, "warehouse": WAREHOUSE}],
		}
	).insert()
	order.submit()
	return order


def selling_price(item_code: str, rate: float) -> None:
	"""The item's price in the terminals' price list."""
	frappe.get_doc(
		{
			"doctype": "Item Price",
			"item_code": item_code,
			"price_list": "Standard Selling",
			"price_list_rate": rate,
		}
	).insert(ignore_permissions=True)


def receive(item_code: str, qty: float, days_ago: int = 0) -> None:
	entry = frappe.get_doc(
		{
			"doctype": "Stock Entry",
			"company": company(),
			"stock_entry_type": "Material Receipt",
			"set_posting_time": 1,
			"posting_date": frappe.utils.add_days(frappe.utils.nowdate(), -days_ago),
			"items": [{"item_code": item_code, "qty": qty, "t_warehouse": WAREHOUSE, "basic_rate": 10}],
		}
	).insert(ignore_permissions=True)
	entry.submit()


def customer(label: str) -> str:
	return (
		frappe.get_doc(
			{
				"doctype": "Customer",
				"customer_name": f"{PREFIX}{label} {frappe.generate_hash(length=6)}",
				"customer_group": "All Customer Groups",
				"territory": "All Territories",
			}
		)
		.insert(ignore_permissions=True)
		.name
	)


def forget_queued_applies(terminals: list[str]) -> None:
	"""Drop the apply jobs still queued for these (test) terminals: tests that apply in-process
	leave them behind, and a later test's worker would spend its time on them first."""
	from frappe.utils.background_jobs import create_job_id, get_queue

	from erp_connect.services.pos.ledger import APPLY_JOBS

	queue = get_queue("default")
	ids = {create_job_id(f"erp_connect:pos:{t}:{slot}") for t in terminals for slot in range(APPLY_JOBS)}
	for job_id in ids & set(queue.get_job_ids()):
		job = queue.fetch_job(job_id)
		if job:
			job.delete()


def on_hand(item_code: str) -> float:
	return frappe.db.get_value("Bin", {"item_code": item_code, "warehouse": WAREHOUSE}, "actual_qty") or 0


def sale_op(client_id: str, customer_name: str, item_code: str, qty: float = 1, rate: float = 100) -> dict:
	return {
		"client_id": client_id,
		"type": "sales_invoice",
		"timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
		"data": {
			"customer": customer_name,
			"items": [{"item_code": item_code, "qty": qty, "rate": rate}],
			"payments": [{"mode_of_payment": "Cash", "amount": qty * rate}],
		},
	}


# -- shifts (POS Invoice booking) ------------------------------------------------------------------
SHIFT_USERS = ("like", "ec-pos-shift-%@example.com")  # each shift test has its own user


def settle_open_shifts() -> None:
	"""What a shift test left unfinished, cancelled: its closings never merged, unconsolidated POS
	Invoices and open POS Opening Entries. ERPNext closes a shift with every unconsolidated POS Invoice of the profile
	and user since the opening, so a later run's closing would take them in."""
	frappe.db.rollback()
	frappe.set_user("Administrator")
	for name in frappe.get_all(
		"POS Closing Entry",
		{"user": SHIFT_USERS, "docstatus": 1, "status": ("in", ("Queued", "Failed"))},
		pluck="name",
	):
		frappe.get_doc("POS Closing Entry", name).cancel()  # never merged: nothing to undo
	for name in frappe.get_all(
		"POS Invoice",
		{"owner": SHIFT_USERS, "docstatus": 1, "consolidated_invoice": ("is", "not set")},
		pluck="name",
	):
		frappe.get_doc("POS Invoice", name).cancel()
	for name in frappe.get_all("POS Opening Entry", {"user": SHIFT_USERS, "status": "Open"}, pluck="name"):
		if not frappe.db.exists("POS Closing Entry", {"pos_opening_entry": name, "docstatus": 1}):
			frappe.get_doc("POS Opening Entry", name).cancel()
	frappe.db.commit()


def forget_queued_consolidations() -> None:
	from frappe.utils.background_jobs import get_queue

	queue = get_queue("long")
	for job_id in queue.get_job_ids():
		if "erp_connect:pos-closing:" in job_id:
			job = queue.fetch_job(job_id)
			if job:
				job.delete()


def cash(amount: float) -> list[dict]:
	return [{"mode_of_payment": "Cash", "amount": amount}]


def shift_op(client_id: str, kind: str, data: dict, at: "datetime.datetime | None" = None) -> dict:
	moment = at or datetime.datetime.now(datetime.UTC)
	return {"client_id": client_id, "type": kind, "timestamp": moment.isoformat(), "data": data}


# -- the base class of the POS tests --------------------------------------------------------------
POS_USER = "ec-pos@example.com"
OTHER_USER = "ec-pos-other@example.com"
ROLES = [
	CONNECT_API_USER,
	"Sales User",
	"Sales Manager",
	"Accounts User",
	"Stock User",
	"Sales Master Manager",
]


def cleanup_pos_data():
	frappe.db.rollback()
	forget_queued_applies(frappe.get_all("POS Terminal", {"connector": OURS}, pluck="name"))
	delete_test_data()


class PosTestCase(ConnectTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.key, cls.secret = make_api_user(POS_USER, ROLES)
		cls.other_key, cls.other_secret = make_api_user(OTHER_USER, ROLES)
		cls.profile = ensure_pos_profile()
		frappe.db.commit()

	def setUp(self):
		super().setUp()
		self.addCleanup(cleanup_pos_data)
		self.connector = self.make_connector(connector_type="POS")
		self.terminal = self.make_terminal()
		self.walk_in = customer("Walk-in")
		frappe.db.commit()
		self.url, self.http = site_http(self.key, self.secret)

	def make_terminal(self, stock_policy: str = "Block", api_user: str = POS_USER):
		return frappe.get_doc(
			{
				"doctype": "POS Terminal",
				"terminal_name": TEST_PREFIX + "Till " + frappe.generate_hash(length=6),
				"connector": self.connector.name,
				"api_user": api_user,
				"pos_profile": self.profile,
				"stock_policy": stock_policy,
			}
		).insert()

	def call(self, method: str, http=None, timeout: float = 60, **body) -> requests.Response:
		url = f"{self.url}/api/method/erp_connect.api.pos.{method}"
		return (http or self.http).post(url, json=body, timeout=timeout)

	def push(self, operations: list, terminal=None) -> dict:
		r = self.call("push", terminal=(terminal or self.terminal).name, operations=operations)
		self.assertEqual(r.status_code, 200, r.text)
		return r.json()["message"]

	def ledger(self, terminal=None) -> list[dict]:
		frappe.db.rollback()  # see what other processes committed
		return frappe.get_all(
			"POS Operation",
			{"terminal": (terminal or self.terminal).name},
			["client_id", "status", "reference_name", "error", "flag"],
		)

	def invoices_of(self, terminal=None) -> list[dict]:
		frappe.db.rollback()
		return frappe.get_all(
			"Sales Invoice",
			{"remarks": ("like", f"POS terminal {(terminal or self.terminal).name},%"), "docstatus": 1},
			["name", "grand_total", "is_return", "customer"],
		)
