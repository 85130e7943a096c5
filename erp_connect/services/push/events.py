"""What a manager does with events from Desk: retry, replay, and the retention clean-up."""

import frappe
from frappe import _
from frappe.utils import add_days, now_datetime

from erp_connect.engine import mapping, outbound
from erp_connect.erp_connect.doctype.sync_event.sync_event import UNFINISHED_INDEX
from erp_connect.services.common.status import DELIVERED, PENDING, RETRYABLE
from erp_connect.services.push.outbox import insert_event, render_payload
from erp_connect.services.push.wake import wake_after_commit

DELETE_CHUNK = 5000


def retry_events(names: list) -> dict:
	"""Send these events again with their own id, now, with a fresh retry schedule. An event whose
	mapping had failed is rendered again from the document as it is now."""
	frappe.has_permission("Sync Event", "write", throw=True)
	retried, skipped = [], []
	for name in names:
		event = frappe.get_doc("Sync Event", name)
		if event.status not in RETRYABLE:
			skipped.append(name)
			continue
		payload = event.payload or _render_again(event)
		frappe.db.set_value(
			"Sync Event",
			name,
			{"status": PENDING, "attempts": 0, "next_attempt_at": now_datetime(), "payload": payload},
		)
		wake_after_commit(event.connector)
		retried.append(name)
	return {"retried": retried, "skipped": skipped}


def replay_events(names: list) -> dict:
	"""Send these documents again as new events (new ids), rendered from their current state."""
	frappe.has_permission("Sync Event", "write", throw=True)
	created = []
	for name in names:
		event = frappe.get_doc("Sync Event", name)
		if not frappe.db.exists(event.reference_doctype, event.reference_name):
			frappe.throw(
				_(
					"{0} {1} no longer exists, so it cannot be rendered again; use Retry to resend event {2}"
				).format(event.reference_doctype, event.reference_name, name)
			)
		rule = frappe.get_doc("Sync Rule", event.sync_rule).push_spec()
		doc = frappe.get_doc(event.reference_doctype, event.reference_name)
		created.append(insert_event(rule, doc, event.doc_event))
	return {"created": created}  # event ids


def _render_again(event) -> str:
	rule = frappe.get_doc("Sync Rule", event.sync_rule).push_spec()
	doc = frappe.get_doc(event.reference_doctype, event.reference_name)
	ref = outbound.EventRef(
		event.event_id, doc.doctype, doc.name, event.doc_event, event.seq, now_datetime().isoformat()
	)
	try:
		return render_payload(rule, doc.as_dict(convert_dates_to_str=True), ref)
	except mapping.MappingError as e:
		frappe.throw(_("Event {0} still cannot be mapped: {1}").format(event.name, e))


def delete_old_deliveries() -> int:
	"""Daily: delete Delivered events older than the retention setting; Dead ones stay."""
	days = frappe.db.get_single_value("ERP Connect Settings", "delivered_retention_days")
	if not days:
		return 0
	cutoff = add_days(now_datetime(), -days)
	deleted = 0
	for connector in frappe.get_all("Connector", pluck="name"):
		while names := frappe.db.sql_list(
			f"""select name from `tabSync Event` force index ({UNFINISHED_INDEX})
			where connector = %s and status = %s and delivered_at < %s
			order by name limit {DELETE_CHUNK}""",
			(connector, DELIVERED, cutoff),
		):
			frappe.db.delete("Sync Event", {"name": ("in", names)})
			frappe.db.commit()
			deleted += len(names)
	return deleted
