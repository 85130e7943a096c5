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

What the terminal sells (scope.py): the POS Profile's item groups and customer groups, sales items
only, variants rather than their templates. A record that changed since the snapshot and is out of
scope now (it left the groups, stopped being sold) comes as a deletion, so the terminal drops it;
an item that changed comes with its prices and stock, so one that entered the groups has them.
"""

import time

import frappe
from frappe.utils import now_datetime

from erp_connect.engine.cursor import after
from erp_connect.engine.pos_rules import DELETED, STREAMS, FeedCursor, setup_hash
from erp_connect.services.common.keyset import horizon, next_rows
from erp_connect.services.pos.scope import Scope

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
		"is_sales_item",
		"has_variants",
		"variant_of",
		"has_batch_no",
		"has_serial_no",
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
	scope = Scope.of(term)
	setup = setup_hash(term.pos_profile, term.warehouse or "", term.price_list or "", scope.signature())
	now = time.time()
	if cursor and (cursor.too_old(now) or cursor.setup != setup):
		return {"records": [], "deleted": [], "cursor": None, "has_more": False, "full_resync_required": True}
	if cursor is None:  # a full snapshot; deletions from now on matter
		cursor = FeedCursor({DELETED: [str(now_datetime()), ""]}, now, setup)
	edge = cursor.horizon or horizon()  # before reading: the pass's reads come after it
	since = scope.snapshot_moment(cursor.issued)  # what changed later may have been sent before

	records, deleted, has_more, room = [], [], False, limit
	for stream in STREAMS:
		modified, name = cursor.positions.get(stream, ["", ""])
		rows = next_rows(_reader(term, stream, scope), "modified", modified, name, room + 1)
		page, more, last = after(rows, ("modified", "name"), room)
		kept = [r for r in page if scope.sells(stream, r)]
		deleted += [
			{"type": stream, "key": r.name}
			for r in page
			if not scope.sells(stream, r) and r.modified > since and stream in DELETABLE.values()
		]
		records += _render(term, stream, kept, since)
		if last:
			cursor = cursor.moved(stream, str(last[0]), last[1])
		room -= len(page)
		if more or room == 0:  # a full page: the terminal asks again (the next may be empty)
			has_more = True
			break
	if not has_more:
		stamp, name = cursor.positions[DELETED]
		rows = next_rows(_deletions_reader, "creation", stamp, name, limit + 1)
		gone, has_more, last = after(rows, ("creation", "name"), limit)
		deleted += [{"type": DELETABLE[d.deleted_doctype], "key": d.deleted_name} for d in gone]
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


def _reader(term, stream: str, scope: Scope):
	doctype = STREAM_DOCTYPES[stream]
	# items and customers are read whole, so one that left the terminal's scope can be removed;
	# prices and stock only of the items it sells
	filters = {
		"item": [],
		"price": [["price_list", "=", term.price_list], *scope.item_filter("item_code")],
		"customer": [],
		"stock": [["warehouse", "=", term.warehouse], *scope.item_filter("item_code")],
	}[stream]

	def read(more: list, limit: int) -> list[dict]:
		return frappe.get_list(
			doctype,
			fields=["name", "modified", *FIELDS[stream]],
			filters=[*filters, *more],
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


def _render(term, stream: str, rows: list[dict], since) -> list[dict]:
	if stream == "item":
		_add_item_children(rows)
	if stream == "stock":
		_add_batches_and_serials(term, rows)
	records = []
	for row in rows:
		data = {k: _plain(row.get(k)) for k in [*FIELDS[stream], *EXTRA.get(stream, ())]}
		key = row.item_code if stream == "stock" else row.name
		if stream == "customer":
			data["name"] = row.name
		records.append({"type": stream, "key": key, "data": data})
	if stream == "item":
		# an item that changed brings its prices and stock: it may have just entered the groups
		changed = [r.name for r in rows if r.modified > since]
		records += _prices_and_stock_of(term, changed)
	return records


EXTRA = {"item": ("barcodes", "uoms", "attributes"), "stock": ("batches", "serial_nos")}


def _prices_and_stock_of(term, items: list[str]) -> list[dict]:
	if not items:
		return []
	prices = frappe.get_list(
		"Item Price",
		fields=["name", "modified", *FIELDS["price"]],
		filters={"price_list": term.price_list, "item_code": ("in", items)},
	)
	stock = frappe.get_list(
		"Bin",
		fields=["name", "modified", *FIELDS["stock"]],
		filters={"warehouse": term.warehouse, "item_code": ("in", items)},
	)
	return _render(term, "price", prices, None) + _render(term, "stock", stock, None)


def _add_item_children(rows: list[dict]) -> None:
	names = [r.name for r in rows] or [""]
	barcodes, uoms, attributes = {}, {}, {}
	for b in frappe.get_all("Item Barcode", {"parent": ("in", names)}, ["parent", "barcode"], order_by="idx"):
		barcodes.setdefault(b.parent, []).append(b.barcode)
	for u in frappe.get_all(
		"UOM Conversion Detail",
		{"parent": ("in", names)},
		["parent", "uom", "conversion_factor"],
		order_by="idx",
	):
		uoms.setdefault(u.parent, []).append({"uom": u.uom, "conversion_factor": u.conversion_factor})
	for a in frappe.get_all(
		"Item Variant Attribute",
		{"parent": ("in", [r.name for r in rows if r.variant_of] or [""]), "parenttype": "Item"},
		["parent", "attribute", "attribute_value"],
		order_by="idx",
	):
		attributes.setdefault(a.parent, []).append({"attribute": a.attribute, "value": a.attribute_value})
	for row in rows:
		row["barcodes"] = barcodes.get(row.name, [])
		row["uoms"] = uoms.get(row.name, [])
		row["attributes"] = attributes.get(row.name, [])


def _add_batches_and_serials(term, rows: list[dict]) -> None:
	"""What a terminal selling batch or serial items needs: the batches with stock in its warehouse
	(and their expiry) and the serial numbers there."""
	items = [r.item_code for r in rows] or [""]
	tracked = {
		i.name: i
		for i in frappe.get_all(
			"Item",
			{"name": ("in", items)},
			["name", "has_batch_no", "has_serial_no"],
		)
		if i.has_batch_no or i.has_serial_no
	}
	serials: dict = {}
	if any(i.has_serial_no for i in tracked.values()):
		for s in frappe.get_all(
			"Serial No",
			{"item_code": ("in", list(tracked)), "warehouse": term.warehouse, "status": "Active"},
			["name", "item_code"],
			order_by="name",
		):
			serials.setdefault(s.item_code, []).append(s.name)
	for row in rows:
		item = tracked.get(row.item_code)
		row["batches"] = _batches(row.item_code, term.warehouse) if item and item.has_batch_no else None
		row["serial_nos"] = serials.get(row.item_code, []) if item and item.has_serial_no else None


def _batches(item_code: str, warehouse: str) -> list[dict]:
	from erpnext.stock.doctype.batch.batch import get_batch_qty

	quantities = get_batch_qty(item_code=item_code, warehouse=warehouse) or []
	expiry = dict(
		frappe.get_all(
			"Batch",
			{"item": item_code, "name": ("in", [b.batch_no for b in quantities] or [""])},
			["name", "expiry_date"],
			as_list=True,
		)
	)
	return [
		{"batch_no": b.batch_no, "qty": b.qty, "expiry_date": _plain(expiry.get(b.batch_no))}
		for b in quantities
		if b.qty > 0
	]


def _plain(value):
	return str(value) if hasattr(value, "isoformat") else value
