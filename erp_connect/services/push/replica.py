"""What a PostgreSQL replica needs from Frappe: the layout of each mirrored doctype's table, read
from its meta (the engine's transport creates the tables and columns from it)."""

import frappe
from frappe.model import no_value_fields

from erp_connect.engine.transports.postgres_replica import DEFAULT_SCHEMA, Table, describe


def schema_of(connector) -> str:
	return connector.get("replica_schema") or DEFAULT_SCHEMA


def table_of(schema: str, doctype: str) -> Table:
	"""The table of ``doctype`` in ``schema``: its value fields typed, its child tables as tables."""
	meta = frappe.get_meta(doctype)
	children = {
		df.fieldname: (df.options, _value_fields(df.options))
		for df in meta.get_table_fields()
		if df.options and df.fieldtype == "Table"
	}
	return describe(schema, doctype, _value_fields(doctype), children)


def _value_fields(doctype: str) -> list[tuple[str, str]]:
	return [
		(df.fieldname, df.fieldtype)
		for df in frappe.get_meta(doctype).fields
		if df.fieldtype not in no_value_fields
	]
