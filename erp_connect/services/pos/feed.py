"""What a POS terminal needs to sell offline: its setup (payment modes, taxes, price list) and the
master data - items with barcodes and UOMs, prices of its price list, customers, stock of its
warehouse - first as a full snapshot, then as changes since a cursor, with deletions.

Each stream is read in (modified, name) order, strictly after the cursor's position for it, so
equal timestamps across pages lose nothing. The terminal's API user reads through Frappe's
permission-aware get_list.

Late commits: ``modified`` is stamped at save time, and stock (Bin) is touched by every stock
transaction, long ones too. The feed reads in passes as the change feed does (engine/cursor.py):
the first page of a pass fixes a horizon (now minus SETTLE_SECONDS); the page that ends the pass
(``has_more`` false) hands out every stream's position pulled back to it, so the next pull reads
again what changed since and a record that committed late still comes. A record may come again;
the terminal stores records by (type, key), so a repeat changes nothing.
"""

import time

import frappe
from frappe.utils import now_datetime

from erp_connect.engine.cursor import after
from erp_connect.engine.pos_rules import DELETED, STREAMS, FeedCursor, setup_hash
from erp_connect.services.common.keyset import horizon, next_rows

MAX_PAGE = 2000
STREAM_DOCTYPES = {"item": "Item", "price": "Item Price", "customer": "Customer", "stock": "Bin"}
DELETABLE = {"Item": "item", "Item Price": "price", "Customer": "customer"}
FIELDS = {
	"item": [
		"item_code",
		"item_name",
		"item_group",
		"stock_uom",
		"is_stock_item",
		"disabled",
		"standard_rate",
	],
	"price": ["item_code", "uom", "price_list_rate", "currency", "valid_from", "valid_upto"],
	"customer": ["customer_name", "customer_group", "territory", "mobile_no", "email_id", "disabled"],
	"stock": ["item_code", "actual_qty", "projected_qty"],
}


def bootstrap(term: "frappe.Document") -> dict:
	return {"config": config(term), "cursor": None}


def config(term: "frappe.Document") -> dict:
	profile = frappe.get_cached_doc("POS Profile", term.pos_profile)
	taxes = []
	if profile.taxes_and_charges:
		template = frappe.get_cached_doc("Sales Taxes and Charges Template", profile.taxes_and_charges)
		taxes = [
			{
				k: row.get(k)
				for k in ("charge_type", "account_head", "rate", "description", "included_in_print_rate")
			}
			for row in template.taxes
		]
	selling = frappe.get_cached_doc("Selling Settings")
	return {
		"company": term.company,
		"warehouse": term.warehouse,
		"price_list": term.price_list,
		"currency": profile.currency,
		"customer_group": selling.customer_group or "All Customer Groups",
		"territory": selling.territory or "All Territories",
		"payment_modes": [
			{"mode_of_payment": p.mode_of_payment, "default": p.default} for p in profile.payments
		],
		"taxes": taxes,
	}


def pull(term: "frappe.Document", cursor: FeedCursor | None, limit: int) -> dict:
	"""The next page: up to ``limit`` records across the streams, then deletions."""
	setup = setup_hash(term.pos_profile, term.warehouse or "", term.price_list or "")
	now = time.time()
	if cursor and (cursor.too_old(now) or cursor.setup != setup):
		return {"records": [], "deleted": [], "cursor": None, "has_more": False, "full_resync_required": True}
	if cursor is None:  # a full snapshot; deletions from now on matter
		cursor = FeedCursor({DELETED: [str(now_datetime()), ""]}, now, setup)
	edge = cursor.horizon or horizon()  # before reading: the pass's reads come after it

	records, has_more, room = [], False, limit
	for stream in STREAMS:
		modified, name = cursor.positions.get(stream, ["", ""])
		rows = next_rows(_reader(term, stream), "modified", modified, name, room + 1)
		page, more, last = after(rows, ("modified", "name"), room)
		records += _render(stream, page)
		if last:
			cursor = cursor.moved(stream, str(last[0]), last[1])
		room -= len(page)
		if more or room == 0:  # a full page: the terminal asks again (the next may be empty)
			has_more = True
			break
	deleted = []
	if not has_more:
		stamp, name = cursor.positions[DELETED]
		rows = next_rows(_deletions_reader, "creation", stamp, name, limit + 1)
		gone, has_more, last = after(rows, ("creation", "name"), limit)
		deleted = [{"type": DELETABLE[d.deleted_doctype], "key": d.deleted_name} for d in gone]
		if last:
			cursor = cursor.moved(DELETED, str(last[0]), last[1])
	cursor = cursor.in_pass(edge) if has_more else cursor.settled(edge)
	term.db_set("last_pull_at", now_datetime(), update_modified=False)
	return {
		"records": records,
		"deleted": deleted,
		"cursor": cursor.encode(),
		"has_more": has_more,
		"full_resync_required": False,
	}


def _reader(term, stream: str):
	doctype = STREAM_DOCTYPES[stream]
	scope = {
		"item": [["is_sales_item", "=", 1]],
		"price": [["price_list", "=", term.price_list]],
		"customer": [],
		"stock": [["warehouse", "=", term.warehouse]],
	}[stream]

	def read(filters: list, limit: int) -> list[dict]:
		return frappe.get_list(
			doctype,
			fields=["name", "modified", *FIELDS[stream]],
			filters=[*scope, *filters],
			order_by="modified asc, name asc",
			limit_page_length=limit,
		)

	return read


def _deletions_reader(filters: list, limit: int) -> list[dict]:
	# Deleted Document is readable by System Managers only; a terminal gets the names of deleted
	# master data, nothing of their content
	return frappe.get_all(
		"Deleted Document",
		filters=[["deleted_doctype", "in", list(DELETABLE)], *filters],
		fields=["name", "creation", "deleted_doctype", "deleted_name"],
		order_by="creation asc, name asc",
		limit=limit,
	)


def _render(stream: str, rows: list[dict]) -> list[dict]:
	if stream == "item":
		_add_item_children(rows)
	records = []
	for row in rows:
		data = {
			k: _plain(row.get(k))
			for k in [*FIELDS[stream], *(("barcodes", "uoms") if stream == "item" else ())]
		}
		key = row.item_code if stream == "stock" else row.name
		if stream == "customer":
			data["name"] = row.name
		records.append({"type": stream, "key": key, "data": data})
	return records


def _add_item_children(rows: list[dict]) -> None:
	names = [r.name for r in rows] or [""]
	barcodes, uoms = {}, {}
	for b in frappe.get_all("Item Barcode", {"parent": ("in", names)}, ["parent", "barcode"], order_by="idx"):
		barcodes.setdefault(b.parent, []).append(b.barcode)
	for u in frappe.get_all(
		"UOM Conversion Detail",
		{"parent": ("in", names)},
		["parent", "uom", "conversion_factor"],
		order_by="idx",
	):
		uoms.setdefault(u.parent, []).append({"uom": u.uom, "conversion_factor": u.conversion_factor})
	for row in rows:
		row["barcodes"] = barcodes.get(row.name, [])
		row["uoms"] = uoms.get(row.name, [])


def _plain(value):
	return str(value) if hasattr(value, "isoformat") else value
