"""The inbound API, version 1: /api/method/erp_connect.api.v1.<method>. Token auth (an API key of
the connector's API user); every call names its connector."""

import json

import frappe
from frappe import _

from erp_connect.services import access, idempotency
from erp_connect.services import upsert as upsert_service

MAX_BATCH = 1000


class BadRequest(frappe.ValidationError):
	http_status_code = 400


@frappe.whitelist(methods=["POST"])
def upsert(connector: str, doctype: str, records: list | str, atomic: bool = False) -> dict:
	"""Create or update one ``doctype`` document per record (matched by its external id).

	Returns per-record results (created / updated / unchanged / error) and counts. With
	``atomic`` true, one bad record rolls the whole batch back. An ``Idempotency-Key`` header
	makes a retried call return the first response instead of writing again.
	"""
	conn = access.connector_for_caller(connector)
	if not isinstance(doctype, str) or not access.allowed_operations(conn, doctype) & {"create", "update"}:
		raise access.AccessDenied(
			_("Connector {0} may not write {1}: add it to the connector's Allowed DocTypes").format(
				connector, doctype
			)
		)
	if isinstance(records, str):
		try:
			records = json.loads(records)
		except ValueError:
			raise BadRequest(_("records is not valid JSON"))
	if not isinstance(records, list):
		raise BadRequest(_("records must be a JSON list of objects"))
	if len(records) > MAX_BATCH:
		raise BadRequest(_("at most {0} records per call, got {1}").format(MAX_BATCH, len(records)))
	atomic = atomic in (True, 1, "1", "true")

	def write() -> dict:
		return upsert_service.upsert(conn, doctype, records, atomic)

	key = frappe.get_request_header("Idempotency-Key")
	if not key:
		return write()
	return idempotency.run_once(conn.name, key, upsert_service.request_hash(doctype, records, atomic), write)
