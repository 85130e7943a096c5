"""The ERPNext documents each kind of POS operation becomes: a Customer, a POS Sales Invoice
(or return) that updates stock, a Stock Entry; and the offline dependencies between them. A
terminal that books with shifts has its own appliers for sales and shifts (shifts.py)."""

import frappe
from frappe import _

from erp_connect.engine import pos_rules
from erp_connect.services.pos.ledger import DONE, FAILED, operation_key
from erp_connect.services.pos.sale import prepare_sale
from erp_connect.services.pos.stock import submit_with_stock_policy
from erp_connect.services.pos.totals import join_flags


class DependencyFailed(frappe.ValidationError):
	pass


class DependencyPending(Exception):
	"""Another operation this one needs is not applied yet: try again later."""


def apply_customer(term, data: dict, op) -> tuple[str, str, None]:
	settings = frappe.get_cached_doc("Selling Settings")
	doc = frappe.get_doc(
		{
			"doctype": "Customer",
			"customer_name": data["customer_name"],
			"customer_type": "Individual",
			"customer_group": settings.customer_group or "All Customer Groups",
			"territory": settings.territory or "All Territories",
			**{k: data[k] for k in ("mobile_no", "email_id") if data.get(k)},
		}
	)
	doc.flags.erp_connect_origin = term.connector  # not pushed back to where it came from
	doc.insert()
	return "Customer", doc.name, None


def apply_sales_invoice(term, data: dict, op) -> tuple[str, str, str | None]:
	invoice = frappe.get_doc(
		{"doctype": "Sales Invoice", **invoice_values(term, data, op, original_invoice(term.name, data))}
	)
	invoice.flags.erp_connect_origin = term.connector
	total_flag = prepare_sale(term, invoice, data, op)
	invoice.insert(set_name=op.reserved_name)
	return "Sales Invoice", invoice.name, join_flags(total_flag, submit_with_stock_policy(term, invoice))


def original_invoice(terminal: str, data: dict) -> str | None:
	"""The invoice a return returns: named by the terminal, or made by an earlier offline sale."""
	if not data.get("is_return"):
		return None
	return data.get("return_against") or done_dependency(terminal, data.get("return_against_client_id"))


def invoice_values(term, data: dict, op, return_against: str | None) -> dict:
	"""A sale or return as the fields of a POS Sales Invoice or POS Invoice (which share them)."""
	posting = op.client_timestamp
	customer = data.get("customer")
	if data.get("customer_client_id"):
		customer = done_dependency(term.name, data["customer_client_id"])
	customer = customer or frappe.get_cached_value("POS Profile", term.pos_profile, "customer")
	if not customer:
		frappe.throw(
			_("the sale names no customer and POS Profile {0} has no default customer").format(
				term.pos_profile
			)
		)
	require_existing("Customer", [customer])
	require_existing("Item", [line["item_code"] for line in data["items"]])
	return {
		"company": term.company,
		"customer": customer,
		"is_pos": 1,
		"pos_profile": term.pos_profile,
		"update_stock": 1,
		"set_warehouse": term.warehouse,
		"selling_price_list": term.price_list,
		"set_posting_time": 1,
		"posting_date": posting.date(),
		"posting_time": posting.time(),
		"is_return": 1 if data.get("is_return") else 0,
		"return_against": return_against,
		"items": [
			{
				"warehouse": term.warehouse,
				**{k: line[k] for k in ("item_code", "qty", "rate", "uom") if k in line},
			}
			for line in data["items"]
		],
		"payments": data.get("payments") or [],
		"remarks": _("POS terminal {0}, operation {1}").format(term.name, op.client_id),
	}


def apply_stock_adjustment(term, data: dict, op) -> tuple[str, str, str | None]:
	receipt = data["qty"] > 0
	require_existing("Item", [data["item_code"]])
	item = frappe.get_cached_value(
		"Item", data["item_code"], ["valuation_rate", "standard_rate"], as_dict=True
	)
	entry = frappe.get_doc(
		{
			"doctype": "Stock Entry",
			"company": term.company,
			"stock_entry_type": "Material Receipt" if receipt else "Material Issue",
			"set_posting_time": 1,
			"posting_date": op.client_timestamp.date(),
			"posting_time": op.client_timestamp.time(),
			"remarks": data.get("reason") or _("POS terminal {0} stock adjustment").format(term.name),
			"items": [
				{
					"item_code": data["item_code"],
					"qty": abs(data["qty"]),
					("t_warehouse" if receipt else "s_warehouse"): term.warehouse,
					"basic_rate": item.valuation_rate or item.standard_rate or 0,
					"allow_zero_valuation_rate": 0 if (item.valuation_rate or item.standard_rate) else 1,
				}
			],
		}
	)
	entry.flags.erp_connect_origin = term.connector
	entry.insert(set_name=op.reserved_name)
	return "Stock Entry", entry.name, submit_with_stock_policy(term, entry)


SERIES_NAMED = {pos_rules.SALES_INVOICE: "Sales Invoice", pos_rules.STOCK_ADJUSTMENT: "Stock Entry"}
APPLIERS = {
	pos_rules.CUSTOMER: apply_customer,
	pos_rules.SALES_INVOICE: apply_sales_invoice,
	pos_rules.STOCK_ADJUSTMENT: apply_stock_adjustment,
}


def require_existing(doctype: str, names: list[str]) -> None:
	"""A clear message for a name the terminal got wrong, before ERPNext trips over it."""
	found = set(frappe.get_all(doctype, {"name": ("in", names)}, pluck="name"))
	missing = sorted(set(names) - found)
	if missing:
		frappe.throw(
			_("{0} {1} does not exist").format(_(doctype), ", ".join(missing)), frappe.DoesNotExistError
		)


def done_dependency(terminal: str, client_id: str | None) -> str:
	"""The document an earlier offline operation of this terminal created."""
	row = frappe.db.get_value(
		"POS Operation",
		operation_key(terminal, client_id or ""),
		["status", "reference_name", "error"],
		as_dict=True,
	)
	if not row:
		raise DependencyPending(_("operation {0} has not arrived yet").format(client_id))
	if row.status == FAILED:
		raise DependencyFailed(_("operation {0} failed: {1}").format(client_id, row.error))
	if row.status not in DONE:
		raise DependencyPending(_("operation {0} is not applied yet").format(client_id))
	return row.reference_name
