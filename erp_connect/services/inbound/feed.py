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

A mobile app's people read the feed with their own permissions: documents through get_list (User
Permissions apply), deletions only of documents they could read (checked on the deleted
document's data), and the cursor keeps a fingerprint of their access. When it changed (a User
Permission or a role taken away or given), the next call answers ``resync``: no records, and a
cursor from the start, so the client drops its copy and reads what it may read now.
"""

import datetime
import json

import frappe
from frappe.permissions import has_permission

from erp_connect.engine import mapping
from erp_connect.engine.cursor import Cursor, access_fingerprint, after, settle
from erp_connect.services.common.keyset import horizon, next_rows
from erp_connect.services.common.templates import render_template
from erp_connect.services.inbound.access import is_people_connector
from erp_connect.services.push.outbox import document_view

MAX_PAGE = 500


def changes(connector: "frappe.Document", doctype: str, cursor: Cursor, limit: int) -> dict:
	personal = is_people_connector(connector)
	access = caller_access(doctype) if personal else ""
	if cursor.access and cursor.access != access:  # the caller's access changed: start again
		# the client drops its copy, so only deletions from this pass on concern it
		return {
			"records": [],
			"deleted": [],
			"cursor": Cursor(deleted_at=horizon(), access=access).encode(),
			"has_more": True,
			"resync": True,
		}

	edge = cursor.horizon or horizon()  # before reading: the pass's reads come after it
	rows = _changed_documents(doctype, cursor, limit + 1)
	page, more_docs, last = after(rows, ("modified", "name"), limit)
	deletions = _deletions(doctype, cursor, limit + 1)
	gone, more_deleted, last_deleted = after(deletions, ("creation", "name"), limit)
	if personal:  # the position still moves past what the caller may not see
		gone = _readable_deletions(doctype, gone)

	documents = last or (cursor.modified, cursor.name)
	deleted = last_deleted or (cursor.deleted_at, cursor.deleted_name)
	has_more = more_docs or more_deleted
	if has_more:  # the pass goes on
		next_cursor = Cursor(*documents, *deleted, edge, access)
	else:  # the pass ends: the next one reads again from the horizon
		next_cursor = Cursor(*settle(documents, edge), *settle(deleted, edge), access=access)
	return {
		"records": _render(connector.name, doctype, page),
		"deleted": [{"name": d.deleted_name, "deleted_at": str(d.creation)} for d in gone],
		"cursor": next_cursor.encode(),
		"has_more": has_more,
		"resync": False,
	}


def caller_access(doctype: str) -> str:
	"""The fingerprint of what decides which ``doctype`` documents the caller may read: its roles,
	its User Permissions (on any doctype: links carry them), what is shared with it, the
	doctype's permission rules and whether User Permissions are strict."""
	user = frappe.session.user
	return access_fingerprint(
		{
			"roles": frappe.get_roles(user),
			"user_permissions": frappe.get_all(
				"User Permission",
				{"user": user},
				["allow", "for_value", "applicable_for", "apply_to_all_doctypes", "hide_descendants"],
				as_list=True,
			),
			"shares": frappe.get_all(
				"DocShare",
				filters={"share_doctype": doctype},
				or_filters={"user": user, "everyone": 1},
				fields=["share_name", "user", "everyone", "read"],
				as_list=True,
			),
			"rules": [
				(p.role, p.permlevel, p.read, p.select, p.if_owner)
				for p in frappe.get_meta(doctype).permissions
			],
			"strict": [frappe.db.get_single_value("System Settings", "apply_strict_user_permissions")],
		}
	)


def _readable_deletions(doctype: str, tombstones: list[dict]) -> list[dict]:
	"""The tombstones of documents the caller could read, judged on the deleted document's data
	(its links as they were), so nobody learns the names of others' deleted documents."""
	data = dict(
		frappe.get_all(
			"Deleted Document",
			{"name": ("in", [t.name for t in tombstones] or [""])},
			["name", "data"],
			as_list=True,
		)
	)
	readable = []
	for tombstone in tombstones:
		try:
			doc = frappe.get_doc(json.loads(data.get(tombstone.name) or "{}"))
		except Exception:  # data that is no document any more: nothing to judge it by
			continue
		if doc.doctype == doctype and has_permission(doctype, "read", doc, raise_exception=False):
			readable.append(tombstone)
	return readable


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
