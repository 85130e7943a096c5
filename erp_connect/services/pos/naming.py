"""Names for the documents POS operations create, taken from the naming series at claim time in
one short transaction, so parallel appliers do not queue on the series' row lock."""

import frappe
from frappe.model.naming import NamingSeries, get_default_naming_series, parse_naming_series
from frappe.utils import cint


def reserve_document_names(token: str, series_named: dict) -> None:
	"""Give each claimed operation that creates a series-named document its name now, in this
	short transaction. Otherwise every apply would hold the naming series' row lock for the whole
	of its insert and submit, and parallel workers would take turns instead of working together."""
	rows = frappe.get_all(
		"POS Operation",
		{"claim_token": token, "reserved_name": ("is", "not set"), "op_type": ("in", list(series_named))},
		["name", "op_type"],
		order_by="client_timestamp, client_id",
	)
	for op_type, doctype in series_named.items():
		ops = [r.name for r in rows if r.op_type == op_type]
		for op, reserved in zip(ops, reserve_names(doctype, len(ops)), strict=True):
			frappe.db.set_value("POS Operation", op, "reserved_name", reserved, update_modified=False)


def reserve_names(doctype: str, count: int) -> list[str]:
	"""``count`` consecutive names of ``doctype``'s default naming series, in one update."""
	if not count:
		return []
	series = NamingSeries(get_default_naming_series(doctype) or "")
	prefix = series.get_prefix()
	current = frappe.db.sql("select current from `tabSeries` where name = %s for update", prefix)
	if current:
		frappe.db.sql("update `tabSeries` set current = current + %s where name = %s", (count, prefix))
		first = cint(current[0][0]) + 1
	else:
		frappe.db.sql("insert into `tabSeries` (name, current) values (%s, %s)", (prefix, count))
		first = 1
	numbers = iter(range(first, first + count))
	return [
		parse_naming_series(
			series.series,
			doctype=doctype,
			number_generator=lambda _, digits: str(next(numbers)).zfill(digits),
		)
		for _ in range(count)
	]
