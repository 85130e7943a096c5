"""Who may call the inbound API for a connector, what it may touch, and how often.

A call must come from the connector's (or the POS terminal's) own API user, who needs the Connect
API User role and may not be a System Manager (``users.writer_problem``), and the connector must
list the doctype with the operation; core and security doctypes are refused whatever it lists. Frappe's own
permissions still apply on top when the document is written.

A Mobile App connector (a kind whose ``callers_are_people``) has no API user: its callers are the
people holding its Member Role, each signed in through its OAuth Client, and only with a bearer
token of that client (never an API key or a Desk session); they read the change feed and upsert
with their own permissions, User Permissions included, and nothing else. The same checks on
people as on API users (never Administrator or a System Manager, never a disabled user). Calls are counted per connector
(429 with Retry-After above its Calls per Minute) and limited in size (413): Frappe's own rate
limiter counts per endpoint and IP and sends no Retry-After.
"""

import math

import frappe
from frappe import _
from frappe.model.document import Document
from frappe.permissions import AUTOMATIC_ROLES
from frappe.utils import now_datetime

from erp_connect.engine import transports
from erp_connect.install import CONNECT_API_USER, CONNECT_MOBILE_USER
from erp_connect.services.common import users
from erp_connect.services.common.doctypes import sync_refusal
from erp_connect.services.common.rates import count_in_window

OPERATIONS = ("create", "update", "submit", "cancel", "read")
WINDOW_SECONDS = 60
MAX_REQUEST_BYTES = 10 * 1024 * 1024


class AccessDenied(frappe.PermissionError):
	http_status_code = 403


class RateLimited(frappe.ValidationError):
	http_status_code = 429


class RequestTooLarge(frappe.ValidationError):
	http_status_code = 413


def connector_for_caller(connector: str, people_may_call: bool = False) -> "frappe.Document":
	"""The enabled connector whose API user is calling; AccessDenied otherwise. Where
	``people_may_call`` (the change feed, upsert), a Mobile App connector admits its members
	instead (``member_of``); its calls are counted per person."""
	if is_people_connector(connector):
		if not people_may_call:
			raise AccessDenied(
				_("Connector {0} is a mobile app's: its people may read changes and upsert only").format(
					connector
				)
			)
		member_of(connector)
		doc = frappe.get_doc("Connector", connector)
		check_limits(doc, per=frappe.session.user)
		return doc
	caller_of("Connector", connector, ["enabled", "api_user"])
	doc = frappe.get_doc("Connector", connector)
	check_limits(doc)
	return doc


def is_people_connector(connector) -> bool:
	"""Whether ``connector`` (a name or a document) is one whose callers are people (Mobile App)."""
	kind = (
		connector.connector_type
		if isinstance(connector, Document)
		else isinstance(connector, str) and frappe.db.get_value("Connector", connector, "connector_type")
	)
	return bool(kind) and transports.kind(kind).callers_are_people


def member_of(connector: str) -> "frappe._dict":
	"""The Mobile App connector ``connector`` when the caller is one of its people: signed in with
	an active bearer token of the connector's OAuth Client (Frappe checked it and set the user),
	holding its Member Role, and neither Administrator, a System Manager nor disabled. The same
	403 whether the connector is missing, disabled or the token is another app's."""
	user = frappe.session.user
	values = user != "Guest" and frappe.db.get_value(
		"Connector", connector, ["enabled", "oauth_client", "member_role"], as_dict=True
	)
	token = bearer_token()
	if (
		not values
		or not values.enabled
		or not values.oauth_client
		or not token
		or (token.client, token.user, token.status) != (values.oauth_client, user, "Active")
		or not token.expiration_time
		or token.expiration_time <= now_datetime()
	):
		raise AccessDenied(
			_("{0} {1} does not exist or does not accept calls from {2}").format(
				_("Connector"), connector, user
			)
		)
	problem = users.writer_problem(user, values.member_role)
	if problem:
		raise AccessDenied(problem)
	return values


def bearer_token() -> "frappe._dict | None":
	"""The OAuth Bearer Token this request came with (client, user, status, expiry), if any. Frappe
	sets the user from a valid one; an invalid one may leave a Desk session's user in place, so the
	token itself is checked again."""
	parts = (frappe.get_request_header("Authorization") or "").split(" ")
	if len(parts) != 2 or parts[0].lower() != "bearer" or not parts[1]:
		return None
	return frappe.db.get_value(
		"OAuth Bearer Token", parts[1], ["client", "user", "status", "expiration_time"], as_dict=True
	)


def rotate_refresh_token(token: "frappe.Document", method: str | None = None) -> None:
	"""doc_event (after_insert) of OAuth Bearer Token: a token a mobile app's OAuth Client got for
	a refresh token ends the token it was refreshed from, access token and refresh token alike
	(refresh token rotation: a refresh token works once, so a stolen one is found out at the next
	refresh). Frappe's provider leaves the old one active; clients of other integrations keep that."""
	form = frappe.form_dict
	used = form.get("refresh_token") if form.get("grant_type") == "refresh_token" else None
	if not used or used == token.refresh_token:
		return
	if not frappe.db.exists("Connector", {"oauth_client": token.client}):
		return
	frappe.db.set_value(
		"OAuth Bearer Token",
		{"refresh_token": used, "client": token.client, "name": ("!=", token.name)},
		"status",
		"Revoked",
		update_modified=False,
	)


def member_role_problem(role: str | None) -> str | None:
	"""Why ``role`` cannot be a Mobile App's Member Role: one every user has, or one that may do
	anything, would let everyone (or a System Manager) in."""
	if role in (*AUTOMATIC_ROLES, users.SYSTEM_MANAGER, CONNECT_API_USER):
		return _("{0} cannot be a Member Role: pick a role only the app's people have, such as {1}").format(
			role, CONNECT_MOBILE_USER
		)
	return None


def caller_of(doctype: str, name, fields: list[str]) -> "frappe._dict":
	"""The ``fields`` of the enabled Connector or POS Terminal ``name`` whose API user is the
	caller, who must hold the Connect API User role. The same 403 whether it is missing, disabled
	or someone else's, so nothing leaks."""
	user = frappe.session.user
	values = (
		user != "Guest" and isinstance(name, str) and frappe.db.get_value(doctype, name, fields, as_dict=True)
	)
	if not values or not values.enabled or values.api_user != user:
		raise AccessDenied(
			_("{0} {1} does not exist or does not accept calls from {2}").format(_(doctype), name, user)
		)
	if CONNECT_API_USER not in frappe.get_roles(user):
		raise AccessDenied(
			_("{0} needs the role {1} to call the ERP Connect API").format(user, CONNECT_API_USER)
		)
	problem = users.writer_problem(user)
	if problem:
		raise AccessDenied(problem)
	return values


def check_limits(connector: "frappe.Document", per: str | None = None) -> None:
	"""The request's size, and the connector's calls in this minute (``per`` person, for a mobile
	app's people: one busy rep does not use up the others' calls)."""
	length = frappe.request.content_length if frappe.request else None
	if length and length > MAX_REQUEST_BYTES:
		raise RequestTooLarge(_("requests may be at most {0} MB").format(MAX_REQUEST_BYTES // (1024 * 1024)))
	limit = connector.rate_limit_per_minute
	if not limit:
		return
	key = f"inbound:{connector.name}" + (f":{per}" if per else "")
	count, seconds_left = count_in_window(key, WINDOW_SECONDS)
	if count > limit:
		retry_after = math.ceil(seconds_left)
		frappe.local.erp_connect_retry_after = retry_after
		raise RateLimited(
			_("Connector {0} allows {1} calls a minute; try again in {2} s").format(
				connector.name, limit, retry_after
			)
		)


def add_retry_after(response, request) -> None:
	"""after_request hook: the 429 above says when to come back."""
	seconds = getattr(frappe.local, "erp_connect_retry_after", None)
	if seconds and response.status_code == 429:
		response.headers["Retry-After"] = str(seconds)


def allowed_operations(connector: "frappe.Document", doctype: str) -> set[str]:
	for row in connector.allowed_doctypes:
		if row.reference_doctype == doctype:
			return {op for op in OPERATIONS if row.get(f"can_{op}")}
	return set()


def require(connector: "frappe.Document", doctype: str, operation: str) -> None:
	refused = sync_refusal(doctype)
	if refused:
		raise AccessDenied(refused)
	if operation not in allowed_operations(connector, doctype):
		raise AccessDenied(
			_("Connector {0} may not {1} {2}: add it to the connector's Allowed DocTypes").format(
				connector.name, operation, doctype
			)
		)


def write_refusal(connector: "frappe.Document", doctype: str) -> str | None:
	"""Why ``connector`` may neither create nor update ``doctype`` (a pull or an inbound rule would
	write nothing); None when it may do one of them."""
	refused = sync_refusal(doctype)
	if refused:
		return refused
	if not allowed_operations(connector, doctype) & {"create", "update"}:
		return _(
			"Connector {0} may not create or update {1}: add {1} to its Allowed DocTypes with Create "
			"and Update"
		).format(connector.name, doctype)
	return None
