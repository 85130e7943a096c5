"""Names for the documents POS operations create, taken at claim time in one short transaction,
so parallel appliers do not queue on a counter's row lock. They follow the site's naming as
ERPNext would apply it: the first Document Naming Rule of the doctype (by priority) whose
conditions the document meets - e.g. "POS Profile = Shop 2" gives a profile its own series -
else the doctype's default naming series."""

import json

import frappe
from frappe.model.naming import NamingSeries, get_default_naming_series, parse_naming_series
from frappe.utils import cint
from frappe.utils.data import evaluate_filters

from erp_connect.engine import pos_rules

RULE = "Document Naming Rule"


def reserve_document_names(token: str, series_named: dict) -> None:
	"""Give each claimed operation that creates a series-named document its name now, in this
	short transaction. Otherwise every apply would hold the counter's row lock for the whole of
	its insert and submit, and parallel workers would take turns instead of working together."""
	rows = frappe.get_all(
		"POS Operation",
		{"claim_token": token, "reserved_name": ("is", "not set"), "op_type": ("in", list(series_named))},
		["name", "op_type", "terminal", "payload", "client_timestamp"],
		order_by="client_timestamp, client_id",
	)
	if not rows:
		return
	term = frappe.get_doc("POS Terminal", rows[0].terminal)  # a claim is one terminal's
	by_source: dict = {}
	for row in rows:
		doc = naming_stub(term, row, series_named[row.op_type])
		by_source.setdefault(naming_source(doc), []).append((row.name, doc))
	for source, ops in by_source.items():
		for (op, _doc), reserved in zip(ops, reserve_names(source, [d for _, d in ops]), strict=True):
			frappe.db.set_value("POS Operation", op, "reserved_name", reserved, update_modified=False)


def naming_stub(term, row, doctype: str) -> "frappe.Document":
	"""The document as far as its naming can see it before it is built: what the terminal and the
	operation say (company, profile, warehouse, return or sale, customer, posting date)."""
	data = json.loads(row.payload)
	fields = {"doctype": doctype, "company": term.company, "posting_date": row.client_timestamp.date()}
	if row.op_type == pos_rules.SALES_INVOICE:
		fields.update(
			pos_profile=term.pos_profile,
			is_pos=1,
			update_stock=1,
			set_warehouse=term.warehouse,
			selling_price_list=term.price_list,
			is_return=1 if data.get("is_return") else 0,
			customer=data.get("customer"),
		)
	else:
		fields["stock_entry_type"] = "Material Receipt" if data.get("qty", 0) > 0 else "Material Issue"
	return frappe.get_doc(fields)


def naming_source(doc) -> tuple[str, str, str]:
	"""(doctype, "rule", rule name) for the Document Naming Rule that names ``doc``, else
	(doctype, "series", the default naming series) - as frappe.model.naming does."""
	rules = frappe.cache_manager.get_doctype_map(
		RULE, doc.doctype, filters={"document_type": doc.doctype, "disabled": 0}, order_by="priority desc"
	)
	for r in rules:
		rule = frappe.get_cached_doc(RULE, r.name)
		conditions = [(doc.doctype, c.field, c.condition, c.value) for c in rule.conditions]
		if not conditions or evaluate_filters(doc, conditions):
			return doc.doctype, "rule", rule.name
	return doc.doctype, "series", get_default_naming_series(doc.doctype) or ""


def reserve_names(source: tuple[str, str, str], docs: list) -> list[str]:
	"""One name per document from ``source``, consecutive, in one update of its counter."""
	if not docs:
		return []
	doctype, kind, name = source
	count = len(docs)
	if kind == "rule":
		rule = frappe.get_cached_doc(RULE, name)
		counter = cint(frappe.db.get_value(RULE, name, "counter", for_update=True))
		frappe.db.set_value(RULE, name, "counter", counter + count, update_modified=False)
		return [
			parse_naming_series(rule.prefix, doc=doc) + str(counter + i).zfill(cint(rule.prefix_digits))
			for i, doc in enumerate(docs, start=1)
		]
	series = NamingSeries(name)
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
		for _ in docs
	]
