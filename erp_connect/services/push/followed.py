"""Changes ERPNext makes with plain SQL, which no document event reports, followed through the
documents that cause them:

- an Item's stock level (Bin): every Stock Ledger Entry (a movement, the reverse entry of a
  cancellation, a reconciliation) and every finished repost writes ``on_stock_change``;
- a Sales Order's delivery and billing status: every Delivery Note and Sales Invoice submitted or
  cancelled against it writes ``on_status_change``.

Each is an event of the changed document for every push rule that picked it. Coalesced: a document
has at most one such event waiting per rule, so a burst of 100 movements sends the level once. The
payload is rendered again when the event is claimed for sending, from what is committed by then, so
what goes out is the newest state, and per-document order means a later send never carries an
older state than an earlier one. The causing transaction locks the waiting event's row until it
commits, so a drain cannot claim the event in between and miss that change.
"""

from collections.abc import Callable
from dataclasses import dataclass

import frappe
from frappe.utils import now_datetime

from erp_connect.engine import mapping, outbound
from erp_connect.engine.specs import PushSpec
from erp_connect.services.common.locks import lock_until_transaction_ends
from erp_connect.services.common.status import WAITING
from erp_connect.services.push.outbox import document_view, event_row, insert_rows, push_rules, render_payload

STOCK_EVENT = "on_stock_change"
STATUS_EVENT = "on_status_change"
LOCK_WAIT_SECONDS = 10  # for the same document's change in another transaction to commit


# -- what is followed ---------------------------------------------------------------------------
def levels(item_code: str, warehouses: tuple[str, ...]) -> dict:
	"""The item's quantity now, per warehouse and summed (over the rule's warehouses, or all)."""
	by_warehouse = {
		warehouse: float(qty or 0)
		for warehouse, qty in frappe.db.sql(
			"select warehouse, actual_qty from `tabBin` where item_code = %s order by warehouse", item_code
		)
		if not warehouses or warehouse in warehouses
	}
	return {"stock_qty": sum(by_warehouse.values()), "stock_by_warehouse": by_warehouse}


@dataclass(frozen=True)
class Followed:
	doctype: str
	extra_fields: tuple[str, ...] = ()  # what the field map may read besides the document's fields
	extras: Callable[[PushSpec, str], dict] | None = None  # their values now, for (rule, name)


FOLLOWED = {
	STOCK_EVENT: Followed(
		"Item", ("stock_qty", "stock_by_warehouse"), lambda rule, name: levels(name, rule.warehouses)
	),
	STATUS_EVENT: Followed("Sales Order"),
}


def view(event: str, rule: PushSpec, doc) -> dict:
	"""What a followed event's field map reads: the document as it is now, plus its extras."""
	followed = FOLLOWED[event]
	extras = followed.extras(rule, doc.name) if followed.extras else {}
	return {**document_view(doc, rule.doc_fields), **extras}


# -- the documents that cause the changes (doc_events) ------------------------------------------
def on_stock_ledger_entry(doc, method=None) -> None:
	"""Stock Ledger Entry on_submit (a cancellation submits reverse entries too)."""
	follow(STOCK_EVENT, doc.item_code, warehouse=doc.warehouse)


def on_repost(doc, method=None) -> None:
	"""Repost Item Valuation on_update: a finished repost may have moved quantities."""
	before = doc.get_doc_before_save()
	if doc.status != "Completed" or (before and before.status == "Completed"):
		return
	if doc.item_code:
		moved = [(doc.item_code, doc.warehouse)]
	else:
		moved = frappe.db.sql(
			"""select distinct item_code, warehouse from `tabStock Ledger Entry`
			where voucher_type = %s and voucher_no = %s""",
			(doc.voucher_type, doc.voucher_no),
		)
	for item_code, warehouse in moved:
		follow(STOCK_EVENT, item_code, warehouse=warehouse)


def on_order_fulfilment(doc, method=None) -> None:
	"""Delivery Note and Sales Invoice on_submit and on_cancel: their Sales Orders' status moved."""
	field = "against_sales_order" if doc.doctype == "Delivery Note" else "sales_order"
	for order in dict.fromkeys(row.get(field) for row in doc.items if row.get(field)):
		follow(STATUS_EVENT, order)


def follow(event: str, name: str, warehouse: str | None = None) -> None:
	"""Write a followed event of the document for every rule that picked it (a stock rule: that
	follows this warehouse), unless one is waiting already."""
	rules = push_rules().get(f"{FOLLOWED[event].doctype}:{event}")
	if not rules:
		return
	now, doc = now_datetime(), None
	for rule in rules:
		if warehouse and rule.warehouses and warehouse not in rule.warehouses:
			continue
		# one transaction at a time per document and rule, so two cannot both find nothing waiting
		lock_until_transaction_ends("followed", f"{rule.name}:{name}", LOCK_WAIT_SECONDS)
		if waiting_event(rule, event, name):
			continue
		doc = doc or frappe.get_doc(rule.doctype, name)  # once for all the rules that follow it
		insert_rows([event_row(rule, doc, view(event, rule, doc), event, None, now)])


def waiting_event(rule: PushSpec, event: str, name: str) -> str | None:
	"""The document's unclaimed (pending or retrying) event of this rule, locked until this
	transaction ends: a drain's claim of it waits for our commit, and then renders what includes
	this change."""
	found = frappe.db.sql(
		"""select name from `tabSync Event`
		where reference_doctype = %s and reference_name = %s and connector = %s and sync_rule = %s
			and doc_event = %s and status in %s
		limit 1 for update""",
		(rule.doctype, name, rule.connector, rule.name, event, WAITING),
	)
	return found[0][0] if found else None


# -- sending --------------------------------------------------------------------------------------
def render_at_send(rows: list[dict], specs: dict[str, PushSpec]) -> None:
	"""Render the claimed followed events again from what is committed now (the claim has
	committed, so this reads a fresh snapshot), in place and in the outbox (what Desk shows is what
	was sent). Each keeps its id, seq and time."""
	followed = [r for r in rows if r.get("doc_event") in FOLLOWED]
	for row in followed:
		rule = specs[row.sync_rule]
		envelope = frappe.parse_json(row.payload)
		ref = outbound.EventRef(
			row.event_id,
			rule.doctype,
			row.reference_name,
			row.doc_event,
			envelope["seq"],
			envelope["timestamp"],
		)
		try:
			doc = frappe.get_doc(rule.doctype, row.reference_name)
			row.payload = render_payload(rule, view(row.doc_event, rule, doc), ref)
		except (frappe.DoesNotExistError, mapping.MappingError):
			continue  # deleted, or the map no longer fits: what was rendered when it was written
		frappe.db.sql("update `tabSync Event` set payload = %s where name = %s", (row.payload, row.name))
	if followed:
		frappe.db.commit()
