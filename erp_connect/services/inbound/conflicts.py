"""Both sides changed a record since its last sync: decided from hashes kept on the Sync Link
(of what the remote sent, and of what ERPNext held right after), never by comparing two systems'
clocks. The policy writes the remote version, keeps ERPNext's, or parks the remote one as a Sync
Conflict for a person."""

import frappe
from frappe.utils import now_datetime

from erp_connect.engine import conflict
from erp_connect.engine.specs import InboundSpec
from erp_connect.services.common.status import CONFLICT


def hold_conflict(
	connector: str,
	spec: InboundSpec,
	doc,
	external_id: str,
	data: dict,
	content_hash: str,
	link,
	decision: str,
) -> dict:
	"""Both sides changed: keep ERPNext's version, or park the remote one for a person to decide.
	The link remembers the remote version, so the same remote change is not held again each run."""
	result = {"external_id": external_id, "status": CONFLICT, "name": doc.name}
	if decision == conflict.PARK:
		result["conflict"] = park(connector, spec, doc, external_id, data)
	result["resolution"] = "parked" if decision == conflict.PARK else "kept ERPNext"
	if link.name:  # a link written earlier in this same batch is still pending
		frappe.db.set_value("Sync Link", link.name, "content_hash", content_hash, update_modified=False)
	link.content_hash = content_hash
	return result


def park(connector: str, spec: InboundSpec, doc, external_id: str, data: dict) -> str:
	"""One open Sync Conflict per record: a newer remote version replaces the parked one."""
	values = {
		"remote_data": frappe.as_json(data),
		"erpnext_data": frappe.as_json(project(doc, data)),
		"detected_at": now_datetime(),
	}
	open_one = frappe.db.get_value(
		"Sync Conflict",
		{
			"connector": connector,
			"reference_doctype": doc.doctype,
			"external_id": external_id,
			"status": "Open",
		},
	)
	if open_one:
		frappe.db.set_value("Sync Conflict", open_one, values)
		return open_one
	parked = frappe.get_doc(
		{
			"doctype": "Sync Conflict",
			"connector": connector,
			"pull_rule": spec.pull_rule,
			"reference_doctype": doc.doctype,
			"reference_name": doc.name,
			"external_id": external_id,
			"status": "Open",
			**values,
		}
	)
	return parked.insert(ignore_permissions=True).name  # bookkeeping of our own, not user data


def local_hash(doc, data: dict) -> str:
	return conflict.content_hash(project(doc, data))


def project(doc, data: dict) -> dict:
	"""What ``doc`` holds for the fields ``data`` sets (child tables: the row fields it sets), in
	plain values, so a document read back from the database hashes like the one just saved."""
	out = {}
	for field, value in data.items():
		current = doc.get(field)
		if isinstance(value, list):
			keys = sorted({k for row in value if isinstance(row, dict) for k in row})
			out[field] = [{k: _plain(row.get(k)) for k in keys} for row in current or []]
		else:
			out[field] = _plain(current)
	return out


def _plain(value):
	if value is None or value == "":
		return ""
	if isinstance(value, bool):
		return int(value)
	if isinstance(value, int | float):
		return float(value)
	return str(value)
