"""A terminal's stock policy when a sale or issue takes more than the warehouse holds: block it
for review, or accept it (stock may go negative for this document only) and flag it, optionally
with a ToDo for a Stock Manager."""

import frappe
from frappe import _


class StockShortfall(frappe.ValidationError):
	pass


def submit_with_stock_policy(term, doc) -> str | None:
	"""Submit, applying the terminal's stock policy when the stock sold or issued is not there.
	Returns the flag to record, or None. "Block" fails the operation (kept for review); the
	"Accept" policies let stock go negative for this document only - what ERPNext's Allow Negative
	Stock does for everything - and flag it."""
	from erpnext.stock.stock_ledger import NegativeStockError

	short = shortfalls(doc, term.warehouse)
	if short and term.stock_policy == "Block":
		raise StockShortfall(_("not enough stock: {0}").format(short))
	frappe.db.savepoint("erp_connect_pos_submit")
	try:
		if short:
			allow_negative_stock(doc)
		doc.submit()
	except NegativeStockError as e:
		# the stock was not there at the document's posting time (an earlier sale took it, or
		# another sale took it between the check and the submit)
		frappe.db.rollback(save_point="erp_connect_pos_submit")
		short = short or frappe.utils.strip_html(str(e))
		if term.stock_policy == "Block":
			raise StockShortfall(_("not enough stock: {0}").format(short))
		doc = frappe.get_doc(doc.doctype, doc.name)
		doc.flags.erp_connect_origin = term.connector
		allow_negative_stock(doc)
		doc.submit()
	if not short:
		return None
	flag = _("stock shortfall at {0}: {1}").format(term.warehouse, short)
	if term.stock_policy == "Accept and Reconcile":
		reconciliation_task(term, doc, flag)
	return flag


def shortfalls(doc, warehouse: str) -> str:
	"""'ITEM needs 3, has 1; …' for the stock items this document takes out of ``warehouse``."""
	needed: dict[str, float] = {}
	for row in doc.items:
		qty = row.get("stock_qty") or row.get("transfer_qty") or row.qty
		leaving = (doc.doctype == "Sales Invoice" and not doc.is_return) or row.get("s_warehouse")
		if leaving and qty > 0:
			needed[row.item_code] = needed.get(row.item_code, 0) + qty
	stock_items = set(
		frappe.get_all("Item", {"name": ("in", list(needed) or [""]), "is_stock_item": 1}, pluck="name")
	)
	short = []
	for item_code, qty in needed.items():
		if item_code not in stock_items:
			continue
		have = frappe.db.get_value("Bin", {"item_code": item_code, "warehouse": warehouse}, "actual_qty") or 0
		if have < qty:
			short.append(_("{0} needs {1}, has {2}").format(item_code, qty, have))
	return "; ".join(short)


def allow_negative_stock(doc) -> None:
	"""For this one document, post its stock ledger as ERPNext does with Allow Negative Stock."""
	post = doc.update_stock_ledger if doc.doctype == "Sales Invoice" else None
	if post:
		doc.update_stock_ledger = lambda allow_negative_stock=False: post(allow_negative_stock=True)
	else:
		make_sl_entries = doc.make_sl_entries
		doc.make_sl_entries = lambda sl_entries, allow_negative_stock=False, **kw: make_sl_entries(
			sl_entries, allow_negative_stock=True, **kw
		)


def reconciliation_task(term, doc, flag: str) -> None:
	description = _("Reconcile stock: {0} (terminal {1})").format(flag, term.name)
	review_task("Stock Manager", doc.doctype, doc.name, description)


def review_task(role: str, doctype: str, name: str, description: str) -> None:
	"""A ToDo on the document for a person with ``role`` (any other than Administrator)."""
	owners = frappe.get_all(
		"Has Role",
		{"role": role, "parenttype": "User", "parent": ("!=", "Administrator")},
		pluck="parent",
	)
	frappe.get_doc(
		{
			"doctype": "ToDo",
			"allocated_to": owners[0] if owners else "Administrator",
			"reference_type": doctype,
			"reference_name": name,
			"description": description,
			"priority": "High",
		}
	).insert(ignore_permissions=True)  # a task for a person, whoever the terminal's user is
