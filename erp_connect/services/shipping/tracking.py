"""A carrier's tracking webhooks moving a Delivery Note's shipping status.

Each tracker event arrives through the webhook receiver (services/inbound/inbox.py) and the one
upsert path as a Shipment Tracking Event, linked to its Delivery Note by the tracking number the
shipment's answer wrote back (engine/transports/easypost.py). The event's external id is the
carrier's event id, so a webhook sent twice is one record.

The note's status is always the status of its latest event by the carrier's own time, whatever
order the webhooks came in: an old event arriving late is kept in the history and moves nothing.
When the status becomes Failed (or Returned), the note's owner gets a Frappe notification (and an
email where their notification settings ask for one), once per change to that status.
"""

import frappe
from frappe import _

from erp_connect.services.common import alerts

STATUS_FIELD = "ec_shipping_status"
STATUS_AT_FIELD = "ec_shipping_status_at"
TRACKING_FIELD = "ec_tracking_number"
NOTIFY_STATUSES = ("Failed", "Returned")  # what the note's owner must act on


def delivery_note_of(tracking_number: str | None) -> str:
	"""The submitted Delivery Note of a tracking number; refused (the delivery is retried) when
	none has it yet, e.g. a webhook that came before the shipment's answer was recorded."""
	name = tracking_number and frappe.db.get_value(
		"Delivery Note", {TRACKING_FIELD: tracking_number, "docstatus": 1}, "name"
	)
	if not name:
		frappe.throw(_("No submitted Delivery Note has the tracking number {0}").format(tracking_number))
	return name


def update_delivery_note(delivery_note: str) -> None:
	"""Set the note's status from its latest tracking event (by event time, then arrival)."""
	latest = frappe.get_all(
		"Shipment Tracking Event",
		{"delivery_note": delivery_note},
		["name", "status", "event_time", "message", "carrier_detail"],
		order_by="event_time desc, creation desc",
		limit=1,
	)
	if not latest:
		return
	latest = latest[0]
	# the row lock orders concurrent webhooks of one note: each sees the one before it
	current = frappe.db.get_value(
		"Delivery Note",
		delivery_note,
		[STATUS_FIELD, STATUS_AT_FIELD, "owner", "customer_name"],
		for_update=True,
	)
	status, status_at, owner, customer_name = current
	if status == latest.status and status_at == latest.event_time:
		return
	frappe.db.set_value(
		"Delivery Note",
		delivery_note,
		{STATUS_FIELD: latest.status, STATUS_AT_FIELD: latest.event_time},
		update_modified=False,
	)
	if latest.status in NOTIFY_STATUSES and status != latest.status:
		notify_owner(delivery_note, owner, customer_name, latest)


def notify_owner(delivery_note: str, owner: str, customer_name: str, event) -> None:
	subject = _("Shipment {0} to {1}: {2}").format(delivery_note, customer_name, event.status)
	message = _("The carrier reports {0} at {1}: {2}").format(
		event.status, event.event_time, event.message or event.carrier_detail or ""
	)
	alerts.notify_users([owner], subject, message, "Delivery Note", delivery_note)


def delivery_note_dashboard(data: dict) -> dict:
	"""The note's Connections show its tracking history (hooks: override_doctype_dashboards)."""
	data.setdefault("transactions", []).append({"label": _("Shipping"), "items": ["Shipment Tracking Event"]})
	return data
