"""Batch and serial numbers sold offline: each line of an item with batches or serial numbers must
name the ones the till sold (the feed carries those in the terminal's warehouse), and the invoice
line is booked against them - ERPNext v15 makes its Serial and Batch Bundle from the line's
batch_no / serial_no (use_serial_batch_fields). One that is unknown, of another item, not in the
warehouse, expired or short is refused up front with the reason, and nothing is written."""

import frappe
from frappe import _
from frappe.utils import flt, getdate


class NotSellable(frappe.ValidationError):
	pass


def book_serials_and_batches(term, invoice, data: dict) -> None:
	codes = [line["item_code"] for line in data["items"]]
	items = {
		i.name: i
		for i in frappe.get_all("Item", {"name": ("in", codes)}, ["name", "has_batch_no", "has_serial_no"])
	}
	returning = bool(data.get("is_return"))
	for row, line in zip(invoice.items, data["items"], strict=True):
		item = items.get(line["item_code"])
		if not item:
			continue  # the booking names the missing item itself
		serials, batch = line.get("serial_no"), line.get("batch_no")
		if bool(item.has_serial_no) != bool(serials):
			raise NotSellable(
				_("{0} has serial numbers: the sale must name the ones sold").format(item.name)
				if item.has_serial_no
				else _("{0} has no serial numbers").format(item.name)
			)
		if bool(item.has_batch_no) != bool(batch):
			raise NotSellable(
				_("{0} has batches: the sale must name the batch sold").format(item.name)
				if item.has_batch_no
				else _("{0} has no batches").format(item.name)
			)
		if serials:
			_check_serials(item.name, serials, term.warehouse, returning)
		if batch:
			_check_batch(item.name, batch, abs(line["qty"]), term.warehouse, invoice.posting_date, returning)
		if serials or batch:
			row.use_serial_batch_fields = 1
			row.serial_no = "\n".join(serials or []) or None
			row.batch_no = batch


def _check_serials(item_code: str, serials: list[str], warehouse: str, returning: bool) -> None:
	found = {
		s.name: s
		for s in frappe.get_all(
			"Serial No", {"name": ("in", serials)}, ["name", "item_code", "warehouse", "status"]
		)
	}
	for number in serials:
		serial = found.get(number)
		if not serial or serial.item_code != item_code:
			raise NotSellable(_("serial number {0} of {1} does not exist").format(number, item_code))
		if returning:
			if serial.warehouse:
				raise NotSellable(
					_("serial number {0} was not sold: it is in {1}").format(number, serial.warehouse)
				)
		elif serial.warehouse != warehouse or serial.status != "Active":
			raise NotSellable(
				_("serial number {0} of {1} is not in {2} (it is {3})").format(
					number, item_code, warehouse, _(serial.status or "Inactive")
				)
			)


def _check_batch(item_code: str, batch_no: str, qty: float, warehouse: str, posting_date, returning: bool):
	batch = frappe.db.get_value("Batch", batch_no, ["item", "disabled", "expiry_date"], as_dict=True)
	if not batch or batch.item != item_code:
		raise NotSellable(_("batch {0} of {1} does not exist").format(batch_no, item_code))
	if batch.disabled:
		raise NotSellable(_("batch {0} is disabled").format(batch_no))
	if returning:
		return
	if batch.expiry_date and getdate(batch.expiry_date) < getdate(posting_date):
		raise NotSellable(_("batch {0} expired on {1}").format(batch_no, batch.expiry_date))
	from erpnext.stock.doctype.batch.batch import get_batch_qty

	have = flt(get_batch_qty(batch_no=batch_no, warehouse=warehouse, item_code=item_code))
	if have < qty:
		raise NotSellable(
			_("batch {0} has {1} in {2}, the sale takes {3}").format(batch_no, have, warehouse, qty)
		)
