"""The change feed: what changed in a doctype since a cursor, for one connector.

Documents are read in (modified, name) order with Frappe's permission-aware get_list, so the API
user sees only what it may read; deletions come from Frappe's Deleted Document log as tombstones.
Each page starts strictly after the last (modified, name) it returned, so documents sharing a
timestamp across a page boundary are neither skipped nor repeated.

Late commits: Frappe stamps ``modified`` (and a tombstone's ``creation``) at save time, so a slow
transaction may commit a stamp older than one already returned. The rule: records are returned up
to now, but a cursor is never handed out past what may still commit. The feed is read in passes;
the first call of a pass fixes its horizon (now minus SETTLE_SECONDS, longer than any transaction
may stay open) and keeps it in the cursor; while ``has_more`` is true the client calls again at
once and each page follows the last; the call that ends the pass (``has_more`` false) hands out
positions pulled back to the horizon. So the next call, after the client's polling interval,
reads again what changed in the last SETTLE_SECONDS: every committed change comes at least once,
and a record may come again (the same name and modified: skip it; a newer modified: apply it).
"""

import datetime

import frappe

from erp_connect.engine import mapping
from erp_connect.engine.cursor import Cursor, after, settle
from erp_connect.services.common.keyset import horizon, next_rows
from erp_connect.services.common.templates import render_template
from erp_connect.services.push.outbox import document_view

MAX_PAGE = 500


def changes(connector: "frappe.Document", doctype: str, cursor: Cursor, limit: int) -> dict:
	edge = cursor.horizon or horizon()  # before reading: the pass's reads come after it
	rows = _changed_documents(doctype, cursor, limit + 1)
	page, more_docs, last = after(rows, ("modified", "name"), limit)
	deletions = _deletions(doctype, cursor, limit + 1)
	gone, more_deleted, last_deleted = after(deletions, ("creation", "name"), limit)

	documents = last or (cursor.modified, cursor.name)
	deleted = last_deleted or (cursor.deleted_at, cursor.deleted_name)
	has_more = more_docs or more_deleted
	if has_more:  # the pass goes on
		next_cursor = Cursor(*documents, *deleted, edge)
	else:  # the pass ends: the next one reads again from the horizon
		next_cursor = Cursor(*settle(documents, edge), *settle(deleted, edge))
	return {
		"records": _render(connector.name, doctype, page),
		"deleted": [{"name": d.deleted_name, "deleted_at": str(d.creation)} for d in gone],
		"cursor": next_cursor.encode(),
		"has_more": has_more,
	}


def _changed_documents(doctype: str, cursor: Cursor, count: int) -> list[dict]:
	def read(filters: list, limit: int) -> list[dict]:
		return frappe.get_list(
			doctype,
			fields=["name", "modified", "docstatus"],
			filters=filters,
			order_by="modified asc, name asc",
			limit_page_length=limit,
		)

	return next_rows(read, "modified", cursor.modified, cursor.name, count)


def _deletions(doctype: str, cursor: Cursor, count: int) -> list[dict]:
	# Deleted Document is readable by System Managers only; the connector may read this doctype,
	# and only the names of its deleted documents are returned
	def read(filters: list, limit: int) -> list[dict]:
		return frappe.get_all(
			"Deleted Document",
			filters=[["deleted_doctype", "=", doctype], *filters],
			fields=["name", "creation", "deleted_name"],
			order_by="creation asc, name asc",
			limit=limit,
		)

	return next_rows(read, "creation", cursor.deleted_at, cursor.deleted_name, count)


def _render(connector: str, doctype: str, rows: list[dict]) -> list[dict]:
	"""Each document as the connector's push rule maps it, or its own fields without one. Only a
	rule that walks child tables or needs the whole document loads full documents; otherwise one
	get_list reads the page."""
	rule_name = frappe.db.get_value(
		"Sync Rule", {"connector": connector, "reference_doctype": doctype, "direction": "Push", "enabled": 1}
	)
	spec = frappe.get_doc("Sync Rule", rule_name).push_spec() if rule_name else None
	names = [r.name for r in rows]
	external_ids = dict(
		frappe.get_all(
			"Sync Link",
			{"connector": connector, "reference_doctype": doctype, "reference_name": ("in", names or [""])},
			["reference_name", "external_id"],
			as_list=True,
		)
	)
	if spec and spec.reads_documents:
		views = {n: document_view(frappe.get_doc(doctype, n), spec.doc_fields) for n in names}
	else:
		fields = ["name", *spec.doc_fields] if spec else ["*"]
		views = {
			v["name"]: {k: _as_text(x) for k, x in v.items()}
			for v in frappe.get_list(doctype, fields=fields, filters={"name": ("in", names or [""])})
		}
	records = []
	for row in rows:
		record = {
			"name": row.name,
			"modified": str(row.modified),
			"cancelled": row.docstatus == 2,
			"external_id": external_ids.get(row.name),
		}
		try:
			view = views[row.name]
			record["data"] = (
				mapping.map_record(view, spec.field_rules, mapping.OUTBOUND, render_template)
				if spec
				else view
			)
		except mapping.MappingError as e:  # this document only: the client still gets past it
			record.update(data=None, error=str(e))
		records.append(record)
	return records


def _as_text(value):
	return str(value) if isinstance(value, datetime.date | datetime.time | datetime.timedelta) else value
