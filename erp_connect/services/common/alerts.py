"""Telling the people who run the integration that something needs them - once per episode, not
once per event: a connector's first failure (a dead event, a target that went away, a paused pull
rule) alerts its owner and the Connect Managers and marks the connector as failing; the next
successful delivery or run clears the mark, so the next episode alerts again."""

import frappe
from frappe.utils import now_datetime

from erp_connect.install import CONNECT_MANAGER


def connector_failing(connector: str, subject: str, message: str, doctype: str, name: str) -> bool:
	"""Alert about ``connector`` unless it is already known to be failing; True when alerted."""
	frappe.db.sql(
		"update `tabConnector` set failing_since = %s where name = %s and failing_since is null",
		(now_datetime(), connector),
	)
	if not frappe.db.sql("select row_count()")[0][0]:
		return False  # this episode was reported already
	owner = frappe.db.get_value("Connector", connector, "owner")
	notify(subject, message, doctype, name, extra_users=[owner])
	return True


def connector_recovered(connector: str) -> None:
	frappe.db.set_value("Connector", connector, "failing_since", None, update_modified=False)


def notify(subject: str, message: str, doctype: str, name: str, extra_users=()) -> None:
	"""A Desk notification (and an email, where the user's notification settings ask for one)
	for every enabled Connect Manager and the given users (Administrator when there is nobody)."""
	users = frappe.get_all(
		"Has Role", {"role": CONNECT_MANAGER, "parenttype": "User"}, pluck="parent", distinct=True
	)
	notify_users([*users, *extra_users], subject, message, doctype, name)


def notify_users(users, subject: str, message: str, doctype: str, name: str) -> None:
	"""A Desk notification (and an email, where their settings ask) for the enabled ``users``
	(Administrator when there is nobody)."""
	users = {u for u in users if u and frappe.db.get_value("User", u, "enabled")}
	for user in sorted(users or {"Administrator"}):
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
