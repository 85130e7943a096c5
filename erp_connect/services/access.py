"""Who may call the inbound API for a connector, and what it may touch.

A call must come from the connector's own API user, who needs the Connect API User role, and the
connector must list the doctype with the operation. Frappe's own permissions still apply on top
when the document is written.
"""

import frappe
from frappe import _

from erp_connect.install import CONNECT_API_USER
from erp_connect.services import limits

OPERATIONS = ("create", "update", "submit", "cancel", "read")


class AccessDenied(frappe.PermissionError):
	http_status_code = 403


def connector_for_caller(connector: str) -> "frappe.Document":
	"""The enabled connector whose API user is calling; AccessDenied otherwise (the same answer
	whether the connector is missing, disabled or someone else's, so nothing leaks)."""
	user = frappe.session.user
	denied = AccessDenied(
		_("Connector {0} does not exist or does not accept calls from {1}").format(connector, user)
	)
	if user == "Guest" or not isinstance(connector, str):
		raise denied
	values = frappe.db.get_value("Connector", connector, ["enabled", "api_user"], as_dict=True)
	if not values or not values.enabled or values.api_user != user:
		raise denied
	if CONNECT_API_USER not in frappe.get_roles(user):
		raise AccessDenied(
			_("{0} needs the role {1} to call the ERP Connect API").format(user, CONNECT_API_USER)
		)
	doc = frappe.get_doc("Connector", connector)
	limits.check(doc)
	return doc


def allowed_operations(connector: "frappe.Document", doctype: str) -> set[str]:
	for row in connector.allowed_doctypes:
		if row.reference_doctype == doctype:
			return {op for op in OPERATIONS if row.get(f"can_{op}")}
	return set()


def require(connector: "frappe.Document", doctype: str, operation: str) -> None:
	if operation not in allowed_operations(connector, doctype):
		raise AccessDenied(
			_("Connector {0} may not {1} {2}: add it to the connector's Allowed DocTypes").format(
				connector.name, operation, doctype
			)
		)
