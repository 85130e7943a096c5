"""The doctypes no connector may sync, in one place: push, pull and inbound rules, the Allowed
DocTypes of a connector and every write path refuse them.

Writing them is a way into the site (a new System Manager, a changed permission, a script that
runs on the server, a page served to guests); reading them hands out password hashes, API keys,
tokens and logs. They are Frappe's machinery, not business data, so nothing is lost by refusing."""

import frappe
from frappe import _

# whole modules: Core (users, roles, permissions, doctypes, server scripts, scheduled jobs,
# reports, settings, files, versions, comments, logs), Custom (custom fields, property setters,
# client scripts), Integrations (OAuth, Connected App, Token Cache, webhooks, social login keys)
NEVER_SYNCED_MODULES = frozenset({"Core", "Custom", "Integrations"})

# named on their own too (some are in the modules above: the list says what matters even if
# Frappe moves one), plus those elsewhere that hold credentials, run templates or code, serve
# pages to guests, or send data out of the site
NEVER_SYNCED = frozenset(
	{
		"User",
		"Role",
		"Has Role",
		"Role Profile",
		"Module Profile",
		"User Permission",
		"DocType",
		"DocField",
		"DocPerm",
		"Custom DocPerm",
		"Custom Field",
		"Property Setter",
		"Module Def",
		"System Settings",
		"Server Script",
		"Client Script",
		"Scheduled Job Type",
		"Report",  # Script and Query Reports run code and SQL
		"Print Format",  # Jinja run on the server when printed
		"Web Page",  # HTML, JavaScript and Jinja served to guests
		"Web Form",
		"Web Template",
		"Website Script",
		"Website Settings",
		"Notification",  # conditions and Jinja run on the server; mails data out
		"Auto Email Report",
		"Email Account",  # mail passwords
		"Connected App",
		"Token Cache",
		"Social Login Key",
		"Webhook",
		"Access Log",
		"Version",
		"Comment",
		"File",
		"Workflow",  # who may approve what
	}
)

OWN_MODULE = "ERP Connect"


def sync_refusal(doctype: str) -> str | None:
	"""Why ``doctype`` may not be synced by any connector; None when it may."""
	module = frappe.db.get_value("DocType", doctype, "module")
	if module is None:
		return _("{0} is not a DocType").format(doctype)
	if module == OWN_MODULE:
		return _("{0} cannot be synced: ERP Connect's own doctypes never are").format(doctype)
	if doctype in NEVER_SYNCED or doctype.startswith("OAuth") or module in NEVER_SYNCED_MODULES:
		return _(
			"{0} cannot be synced: it is one of Frappe's core or security doctypes, which no "
			"connector may read or write"
		).format(doctype)
	return None
