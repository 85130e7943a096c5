"""Telling the people who run the integration that something needs them."""

import frappe

from erp_connect.install import CONNECT_MANAGER


def notify_managers(subject: str, message: str, doctype: str, name: str) -> None:
	"""A Desk notification for every enabled Connect Manager (Administrator when there is none)."""
	users = frappe.get_all(
		"Has Role", {"role": CONNECT_MANAGER, "parenttype": "User"}, pluck="parent", distinct=True
	)
	users = [u for u in users if frappe.db.get_value("User", u, "enabled")] or ["Administrator"]
	for user in users:
		frappe.get_doc(
			{
				"doctype": "Notification Log",
				"for_user": user,
				"type": "Alert",
				"subject": subject,
				"email_content": message,
				"document_type": doctype,
				"document_name": name,
			}
		).insert(ignore_permissions=True)
