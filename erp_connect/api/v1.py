"""The inbound API, version 1: /api/method/erp_connect.api.v1.<method>. Token auth (an API key of
the connector's API user), or for a Mobile App connector a person's OAuth bearer token (changes
and upsert only); every call names its connector."""

import json

import frappe
from frappe import _

from erp_connect.engine.cursor import Cursor, InvalidCursor
from erp_connect.engine.receive_schemes import RequestLine
from erp_connect.services.common import correlation
from erp_connect.services.common.doctypes import sync_refusal
from erp_connect.services.inbound import access, feed, idempotency, imports, inbox
from erp_connect.services.inbound import upsert as inbound
from erp_connect.services.ops.health import connector_status

MAX_BATCH = 1000


class BadRequest(frappe.ValidationError):
	http_status_code = 400


@frappe.whitelist(methods=["POST"])
def upsert(
	connector: str | None = None,
	doctype: str | None = None,
	records: list | str | None = None,
	atomic: bool = False,
	action: str = "save",
) -> dict:
	"""Create or update one ``doctype`` document per record (matched by its external id).

	Returns per-record results (created / updated / unchanged / cancelled / error) and counts.
	``action`` "submit" also submits each document, "cancel" cancels the documents of the
	records' external ids (both only where the connector allows it). With ``atomic`` true, one bad
	record rolls the whole batch back. An ``Idempotency-Key`` header makes a retried call return
	the first response instead of writing again.
	"""
	required(connector=connector, doctype=doctype, records=records)
	conn = _connector_that_may_write(connector, doctype, action, people_may_call=True)
	records = json_list(records, "records", MAX_BATCH)
	atomic = atomic in (True, 1, "1", "true")
	if action not in inbound.ACTIONS:
		raise BadRequest(_("action must be one of {0}").format(", ".join(inbound.ACTIONS)))

	correlation_id = correlation.for_api_call()

	def write() -> dict:
		result = inbound.upsert(conn, doctype, records, atomic, action, correlation_id=correlation_id)
		return {**result, "correlation_id": correlation_id}

	key = frappe.get_request_header("Idempotency-Key")
	if not key:
		return write()
	request = (doctype, records, atomic, action)
	if access.is_people_connector(conn):  # one person's answer is never replayed to another
		request += (frappe.session.user,)
	return idempotency.run_once(conn.name, key, request, write)


@frappe.whitelist(methods=["GET", "POST"])
def changes(
	connector: str | None = None,
	doctype: str | None = None,
	cursor: str | None = None,
	limit: int | str = 100,
) -> dict:
	"""What changed in ``doctype`` since ``cursor``: records (as the connector's push rule maps
	them), deletions and cancellations, in (modified, name) order. Pass the returned ``cursor`` to
	the next call; ``has_more`` says whether to call again at once."""
	required(connector=connector, doctype=doctype)
	conn = access.connector_for_caller(connector, people_may_call=True)
	if not isinstance(doctype, str):
		raise BadRequest(_("doctype must be a name"))
	access.require(conn, doctype, "read")
	try:
		limit = int(limit)
		position = Cursor.decode(cursor)
	except (ValueError, TypeError, InvalidCursor) as e:
		raise BadRequest(str(e) if isinstance(e, InvalidCursor) else _("limit must be a number"))
	if not 1 <= limit <= feed.MAX_PAGE:
		raise BadRequest(_("limit must be between 1 and {0}").format(feed.MAX_PAGE))
	return feed.changes(conn, doctype, position, limit)


@frappe.whitelist(methods=["GET"])
def status(connector: str | None = None) -> dict:
	"""The connector's own view for monitoring: pending, retrying and dead events, the last
	delivery, the oldest event still waiting, and how many records it has linked."""
	required(connector=connector)
	return connector_status(access.connector_for_caller(connector))


@frappe.whitelist(allow_guest=True, methods=["POST"])
def receive() -> dict:
	"""A third-party webhook for one connector: POST …/erp_connect.api.v1.receive?connector=NAME.

	No API key: the request must carry a valid signature of the connector's scheme (Standard
	Webhooks, or an HMAC-SHA256 header like Shopify's or WooCommerce's) and, for Standard Webhooks,
	a timestamp within 5 minutes. Each delivery id is stored and processed once; the answer comes
	before processing, which happens in the background through the same upsert path as the API.
	"""
	# the connector comes from the query string and the signature covers the raw body, so both
	# are read from the request itself (Frappe puts JSON bodies, not query strings, in form_dict)
	request = frappe.request
	return inbox.receive(
		request.args.get("connector") or "",
		dict(request.headers),
		request.get_data(),
		request_line(request),
	)


def request_line(request) -> RequestLine:
	"""The method and the URLs the request may have been called at, for schemes that sign them: the
	request target exactly as it came (gunicorn's RAW_URI, uWSGI's REQUEST_URI) on this site's
	host, with the scheme this site saw, the one a proxy in front of it reports
	(X-Forwarded-Proto), and https (the sender called the proxy)."""
	environ = request.environ
	target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or request.full_path.rstrip("?")
	forwarded = (request.headers.get("X-Forwarded-Proto") or "").split(",")[0].strip()
	schemes = dict.fromkeys(s for s in (request.scheme, forwarded, "https") if s in ("http", "https"))
	urls = [f"{scheme}://{request.host}{target}" for scheme in schemes]
	return RequestLine(request.method, tuple(dict.fromkeys([*urls, request.url])))


@frappe.whitelist(allow_guest=True, methods=["GET"])
def openapi() -> dict:
	"""This API described as OpenAPI 3 (public: it describes shapes, never data)."""
	from erp_connect.api.openapi import document

	return document()


@frappe.whitelist(methods=["POST"])
def start_import(
	connector: str | None = None,
	doctype: str | None = None,
	records: list | str | None = None,
	action: str = "save",
) -> dict:
	"""Upsert up to 100,000 records in the background. Returns the import id at once; follow it
	with ``import_status`` and fetch per-record results with ``import_results``."""
	required(connector=connector, doctype=doctype, records=records)
	conn = _connector_that_may_write(connector, doctype, action)
	records = json_list(records, "records", imports.MAX_RECORDS)
	if action not in inbound.ACTIONS:
		raise BadRequest(_("action must be one of {0}").format(", ".join(inbound.ACTIONS)))
	return imports.start(conn, doctype, records, action)


@frappe.whitelist(methods=["GET"])
def import_status(connector: str | None = None, import_id: str | None = None) -> dict:
	"""Progress and counts of a background import."""
	required(connector=connector, import_id=import_id)
	return imports.status(_import_of(connector, import_id))


@frappe.whitelist(methods=["GET"])
def import_results(connector: str | None = None, import_id: str | None = None) -> None:
	"""The per-record results of a background import, one JSON object per line."""
	required(connector=connector, import_id=import_id)
	job = _import_of(connector, import_id)
	frappe.local.response.update(
		{"type": "download", "filename": f"{job.name}-results.jsonl", "filecontent": imports.results(job)}
	)


def _connector_that_may_write(connector: str, doctype: str, action: str, people_may_call: bool = False):
	"""The caller's connector, when it may write (or cancel) ``doctype``; 403 otherwise. A mobile
	app's people may upsert (as themselves), not start background imports (those run as an API
	user)."""
	conn = access.connector_for_caller(connector, people_may_call)
	refused = isinstance(doctype, str) and sync_refusal(doctype)
	if refused:
		raise access.AccessDenied(refused)
	needed = {"cancel"} if action == "cancel" else {"create", "update"}
	if not isinstance(doctype, str) or not access.allowed_operations(conn, doctype) & needed:
		raise access.AccessDenied(
			_("Connector {0} may not write {1}: add it to the connector's Allowed DocTypes").format(
				connector, doctype
			)
		)
	return conn


def _import_of(connector: str, import_id: str):
	conn = access.connector_for_caller(connector)
	if (
		not isinstance(import_id, str)
		or frappe.db.get_value("Sync Import", import_id, "connector") != conn.name
	):
		raise access.AccessDenied(_("Import {0} is not this connector's").format(import_id))
	return frappe.get_doc("Sync Import", import_id)


def required(**arguments) -> None:
	"""400 naming every argument the call left out (Frappe would answer 500 with a TypeError)."""
	missing = [name for name, value in arguments.items() if value is None or value == ""]
	if missing:
		raise BadRequest(_("missing arguments: {0}").format(", ".join(missing)))


def json_list(value, argument: str, limit: int) -> list:
	"""A list argument, sent as JSON or as a JSON string (form posts); 400 otherwise."""
	if isinstance(value, str):
		try:
			value = json.loads(value)
		except ValueError:
			raise BadRequest(_("{0} is not valid JSON").format(argument))
	if not isinstance(value, list):
		raise BadRequest(_("{0} must be a JSON list").format(argument))
	if len(value) > limit:
		raise BadRequest(_("at most {0} {1} per call, got {2}").format(limit, argument, len(value)))
	return value
