"""Desk actions on Sync Events (list view bulk actions)."""

import frappe

from erp_connect.services.push import events


@frappe.whitelist(methods=["POST"])
def retry(names: str | list) -> dict:
	"""Send Dead, Retrying or Pending events again with their own ids, now."""
	frappe.has_permission("Sync Event", "write", throw=True)
	return events.retry_events(frappe.parse_json(names))


@frappe.whitelist(methods=["POST"])
def replay(names: str | list) -> dict:
	"""Send the documents of these events again as new events from their current state."""
	frappe.has_permission("Sync Event", "write", throw=True)
	return events.replay_events(frappe.parse_json(names))
