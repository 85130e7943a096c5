"""Stock levels to a webshop. ERPNext keeps an item's quantity in Bin and changes it with plain SQL,
so no document event says that it changed. The stock ledger does: every Stock Ledger Entry (a
movement, the reverse entry of a cancellation, a reconciliation) and every finished repost writes an
``on_stock_change`` event of the Item for each push rule that follows its stock.

Coalesced: an item has at most one such event waiting per rule, so a burst of 100 movements sends
the level once. The payload is rendered again when the event is claimed for sending, from the Bin
levels committed by then, so what goes out is the newest level; and per-document order means a
later send never carries an older level than an earlier one. The movement's transaction locks the
waiting event's row until it commits, so a drain cannot claim the event in between and miss it.
"""

import frappe
from frappe.utils import now_datetime

from erp_connect.engine import mapping, outbound
from erp_connect.engine.specs import PushSpec
from erp_connect.services.common.locks import lock_until_transaction_ends
from erp_connect.services.common.status import WAITING
from erp_connect.services.push.outbox import document_view, event_row, insert_rows, push_rules, render_payload

STOCK_EVENT = "on_stock_change"
STOCK_DOCTYPE = "Item"
STOCK_FIELDS = ("stock_qty", "stock_by_warehouse")  # what a stock rule's field map may read too
LOCK_WAIT_SECONDS = 10  # for the movement of the same item in another transaction to commit


def on_stock_ledger_entry(doc, method=None) -> None:
	"""doc_events: Stock Ledger Entry on_submit (a cancellation submits reverse entries too)."""
	follow(doc.item_code, doc.warehouse)


def on_repost(doc, method=None) -> None:
	"""doc_events: Repost Item Valuation on_update; a finished repost may have moved quantities."""
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
		follow(item_code, warehouse)


def follow(item_code: str, warehouse: str | None) -> None:
	"""Write an on_stock_change event of the item for every rule that follows this warehouse,
	unless one is waiting already."""
	rules = push_rules().get(f"{STOCK_DOCTYPE}:{STOCK_EVENT}")
	if not rules:
		return
	now = now_datetime()
	for rule in rules:
		if rule.warehouses and warehouse not in rule.warehouses:
			continue
		# one transaction at a time per item and rule, so two cannot both find nothing waiting
		lock_until_transaction_ends("stock-level", f"{rule.name}:{item_code}", LOCK_WAIT_SECONDS)
		if waiting_event(rule, item_code):
			continue
		item = frappe.get_doc(STOCK_DOCTYPE, item_code)
		insert_rows([event_row(rule, item, stock_view(rule, item), STOCK_EVENT, None, now)])


def waiting_event(rule: PushSpec, item_code: str) -> str | None:
	"""The item's unclaimed (pending or retrying) event of this rule, locked until this transaction ends: a drain's claim
	of it waits for our commit, and then renders a level that includes this movement."""
	found = frappe.db.sql(
		"""select name from `tabSync Event`
		where reference_doctype = %s and reference_name = %s and connector = %s and sync_rule = %s
			and doc_event = %s and status in %s
		limit 1 for update""",
		(STOCK_DOCTYPE, item_code, rule.connector, rule.name, STOCK_EVENT, WAITING),
	)
	return found[0][0] if found else None


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


def stock_view(rule: PushSpec, item) -> dict:
	"""What a stock rule's field map reads: the Item, plus stock_qty and stock_by_warehouse."""
	return {**document_view(item, rule.doc_fields), **levels(item.name, rule.warehouses)}


def render_at_send(rows: list[dict], specs: dict[str, PushSpec]) -> None:
	"""Render the claimed stock events again from the levels committed now (the claim has
	committed, so this reads a fresh snapshot), in place and in the outbox (what Desk shows is
	what was sent). Each keeps its id, seq and time."""
	stock_rows = [r for r in rows if r.get("doc_event") == STOCK_EVENT]
	for row in stock_rows:
		rule = specs[row.sync_rule]
		envelope = frappe.parse_json(row.payload)
		ref = outbound.EventRef(
			row.event_id,
			STOCK_DOCTYPE,
			row.reference_name,
			STOCK_EVENT,
			envelope["seq"],
			envelope["timestamp"],
		)
		try:
			item = frappe.get_doc(STOCK_DOCTYPE, row.reference_name)
			row.payload = render_payload(rule, stock_view(rule, item), ref)
		except (frappe.DoesNotExistError, mapping.MappingError):
			continue  # deleted, or the map no longer fits: what was rendered when it was written
		frappe.db.sql("update `tabSync Event` set payload = %s where name = %s", (row.payload, row.name))
	if stock_rows:
		frappe.db.commit()
