"""Receiving third-party webhooks: verify, store once, answer at once, process in the background.

A delivery is kept in the Inbound Request inbox under the sender's delivery id, unique per
connector, so a webhook sent three times is processed once. The connector's Signature Scheme
(engine/receive_schemes.py) verifies it; its kind says what the delivery carries: records, which
are upserted as the connector's API user through the same path as the API, or payments
(services/payments). Processing is retried with backoff when it fails.
"""

import hashlib
import json
from collections.abc import Mapping

import frappe
from frappe import _
from frappe.utils import add_to_date, now_datetime

from erp_connect.engine import receive_schemes, transports
from erp_connect.engine.retry import RetryPolicy
from erp_connect.engine.signing import WebhookVerificationError
from erp_connect.services.common.status import ERROR
from erp_connect.services.common.users import run_as_api_user
from erp_connect.services.crm.receiver import apply_delivery as apply_crm_events
from erp_connect.services.inbound.access import check_limits
from erp_connect.services.inbound.upsert import describe, upsert
from erp_connect.services.payments.receiver import apply_delivery as apply_payments

PROCESS = "erp_connect.services.inbound.inbox.process"

MAX_BODY_BYTES = 1_000_000
RETRIES = RetryPolicy(schedule=(60, 300, 1800, 7200))  # then it waits for a person
HIDDEN_HEADERS = {"authorization", "cookie"}


class Unauthorized(frappe.AuthenticationError):
	http_status_code = 401


class NotReceiving(frappe.DoesNotExistError):
	http_status_code = 404


class TooLarge(frappe.ValidationError):
	http_status_code = 413


class NotJson(frappe.ValidationError):
	http_status_code = 400


MAX_RECORDS = 1000  # per delivery, as per upsert call: one job must be able to finish it


def receive(
	connector_name: str,
	headers: Mapping[str, str],
	body: bytes,
	request_line: receive_schemes.RequestLine | None = None,
) -> dict:
	"""Verify and store one delivery; processing is enqueued for after the commit.
	``request_line``: how it was called, for schemes that sign the method and URL (HubSpot)."""
	if len(body) > MAX_BODY_BYTES:
		raise TooLarge(_("the body is larger than {0} bytes").format(MAX_BODY_BYTES))
	enabled, doctype = frappe.db.get_value("Connector", connector_name, ["enabled", "receive_doctype"]) or (
		0,
		None,
	)
	if not enabled or not doctype:
		raise NotReceiving(_("no webhook receiver here"))
	connector = frappe.get_doc("Connector", connector_name)
	delivery_id = verify(connector, headers, body, request_line)
	check_limits(connector)  # after the signature: unsigned junk must not use up the quota
	check_records(body)

	# a scheme that does not sign the delivery id lets anyone holding one signed body send it again
	# under a new id (and roll a document back to it): such bodies are taken once per connector
	signs_id = receive_schemes.scheme(connector.receive_scheme).signs_delivery_id
	body_hash = None if signs_id else hashlib.sha256(body).hexdigest()
	if _seen(connector.name, "delivery_id", delivery_id) or (
		body_hash and _seen(connector.name, "body_hash", body_hash)
	):
		return {"status": "duplicate", "delivery_id": delivery_id}
	request = frappe.get_doc(
		{
			"doctype": "Inbound Request",
			"connector": connector.name,
			"delivery_id": delivery_id,
			"body_hash": body_hash,
			"status": "Received",
			"received_at": now_datetime(),
			"headers": json.dumps({k: v for k, v in headers.items() if k.lower() not in HIDDEN_HEADERS}),
			"body": body.decode("utf-8", "replace"),
		}
	)
	try:
		request.db_insert()
	except (frappe.UniqueValidationError, frappe.DuplicateEntryError):
		return {"status": "duplicate", "delivery_id": delivery_id}  # the same delivery, at the same moment
	enqueue(request.name)
	return {"status": "received", "delivery_id": delivery_id}


def _seen(connector: str, field: str, value: str) -> bool:
	return bool(frappe.db.exists("Inbound Request", {"connector": connector, field: value}))


def check_records(body: bytes) -> None:
	"""A body the background job can process: JSON, with at most MAX_RECORDS records (or events)."""
	try:
		records = records_of(json.loads(body))
	except ValueError:
		raise NotJson(_("the body is not JSON"))
	if len(records) > MAX_RECORDS:
		raise TooLarge(
			_("a delivery may carry at most {0} records, this one has {1}").format(MAX_RECORDS, len(records))
		)


def verify(connector, headers: Mapping[str, str], body: bytes, request_line=None) -> str:
	"""The delivery id of a correctly signed, fresh request; Unauthorized otherwise."""
	lowered = {k.lower(): v for k, v in headers.items()}
	try:
		scheme = receive_schemes.scheme(connector.receive_scheme)
		return scheme.verify(
			connector.secret("receive_secret"),
			lowered,
			body,
			connector.scheme_settings(),
			request=request_line,
		)
	except (WebhookVerificationError, KeyError) as e:
		raise Unauthorized(_("webhook refused: {0}").format(str(e)))


def enqueue(name: str) -> None:
	frappe.enqueue(
		PROCESS,
		name=name,
		job_id=f"erp_connect:inbound:{name}",
		deduplicate=True,
		enqueue_after_commit=True,
	)


def process(name: str) -> None:
	"""Apply one stored delivery with the receiver of its connector's kind."""
	request = frappe.get_doc("Inbound Request", name)
	if request.status == "Processed":
		return
	connector = frappe.get_doc("Connector", request.connector)
	receiver = RECEIVERS[transports.kind(connector.connector_type).receives]
	try:
		result, errors = receiver(connector, request)
	except Exception as e:
		result, errors = None, [describe(e)]
	attempts = (request.attempts or 0) + 1
	delay = RETRIES.next_delay(attempts) if errors else None
	frappe.db.set_value(
		"Inbound Request",
		name,
		{
			"status": "Failed" if errors else "Processed",
			"attempts": attempts,
			"processed_at": now_datetime(),
			"next_attempt_at": add_to_date(now_datetime(), seconds=delay) if delay else None,
			"error": "\n".join(errors[:20]) or None,
			"result": json.dumps(result) if result else None,
		},
	)


def upsert_records(connector, request) -> tuple[dict, list[str]]:
	"""The receiver of record kinds: upsert the delivery's records as the connector's API user."""
	with run_as_api_user(connector.api_user, _("Connector {0}").format(connector.name)):
		result = upsert(
			connector,
			connector.receive_doctype,
			records_of(json.loads(request.body)),
			correlation_id=request.name,
		)
	return result, [r["error"] for r in result["results"] if r["status"] == ERROR]


# what a kind's deliveries carry (Transport.receives) -> who applies them: (result, errors)
RECEIVERS = {"records": upsert_records, "payments": apply_payments, "crm events": apply_crm_events}


def records_of(body) -> list:
	"""The records in a webhook body: a Standard Webhooks envelope's data, a list, or one object."""
	if isinstance(body, dict) and "type" in body and "data" in body:
		body = body["data"]
	return body if isinstance(body, list) else [body]


def sweep() -> None:
	"""Every minute: process deliveries whose job was lost, and retry failed ones when due."""
	now = now_datetime()
	stuck = frappe.get_all(
		"Inbound Request",
		{"status": "Received", "received_at": ("<", add_to_date(now, minutes=-2))},
		pluck="name",
	)
	due = frappe.get_all(
		"Inbound Request", {"status": "Failed", "next_attempt_at": ("<=", now)}, pluck="name"
	)
	for name in stuck + due:
		enqueue(name)
