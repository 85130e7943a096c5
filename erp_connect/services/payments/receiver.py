"""A payment platform's delivery turned into its effect: a Payment Entry, its reverse, a Parked
Payment, or nothing (events that move no money). Runs as the connector's API user, once per
provider transaction however often and however concurrently its events arrive."""

import json

import frappe
from frappe import _

from erp_connect.engine import transports
from erp_connect.engine.payments import IGNORED, PAYMENT, PaymentEvent
from erp_connect.services.common.users import run_as_api_user
from erp_connect.services.inbound.upsert import permission_problem
from erp_connect.services.payments import entries

PARKED_PAYMENT = "Parked Payment"
PAYMENT_ENTRY = "Payment Entry"
SAVEPOINT = "erp_connect_payment"


def apply_delivery(connector: "frappe.Document", request: "frappe.Document") -> tuple[dict, list[str]]:
	"""The inbox's receiver for payment kinds: (result, errors). A failure leaves nothing behind
	(rolled back to before it) and is raised, so the inbox keeps the delivery Failed and retries."""
	kind = transports.kind(connector.connector_type)
	event = kind.read_payment(json.loads(request.body), request.delivery_id)
	if event.kind == IGNORED:
		return {"action": "ignored", "reason": event.reason}, []
	frappe.db.savepoint(SAVEPOINT)
	try:
		with run_as_api_user(connector.api_user, _("Connector {0}").format(connector.name)):
			try:
				return apply(connector, event, request.name), []
			except frappe.PermissionError as e:
				if type(e) is not frappe.PermissionError:  # one of ours, with its reason
					raise
				# Frappe's own mostly says nothing: say who lacks what
				raise frappe.PermissionError(permission_problem(PAYMENT_ENTRY, str(e))) from e
	except Exception:
		frappe.db.rollback(save_point=SAVEPOINT)
		raise


def apply(connector: "frappe.Document", event: PaymentEvent, inbound_request: str | None = None) -> dict:
	entries.hold(event.transaction_id)
	existing = entries.recorded(event.transaction_id)
	if existing:
		return {"action": "exists", "payment_entry": existing}
	parked = frappe.db.get_value(
		PARKED_PAYMENT, {"transaction_id": event.transaction_id}, "name", for_update=True
	)
	if parked:
		return {"action": "exists", "parked_payment": parked}
	if event.kind == PAYMENT:
		return receive_payment(connector, event, inbound_request)
	return receive_refund(connector, event, inbound_request)


def receive_payment(connector, event: PaymentEvent, inbound_request) -> dict:
	doctype, name = event.reference_doctype, event.reference_name
	if not doctype or not frappe.db.exists(doctype, name):
		reason = (
			_("{0} {1} does not exist").format(_(doctype), name)
			if doctype
			else _("the payment names no invoice or order (metadata erpnext_invoice / erpnext_order)")
		)
		return park(connector, event, inbound_request, reason)
	doc = entries.payable(doctype, name)
	if event.currency != (doc.currency or "").upper():
		return park(
			connector,
			event,
			inbound_request,
			_("paid in {0}, {1} {2} is in {3}").format(event.currency, _(doctype), name, doc.currency),
		)
	if doctype == "Sales Invoice" and entries.outstanding(doc) <= 0:
		return park(
			connector, event, inbound_request, _("{0} {1} has nothing outstanding").format(_(doctype), name)
		)
	pe = entries.receive(
		connector, doc, event.amount, event.fee, event.transaction_id, event.posted_at, remarks_of(event)
	)
	return {"action": "created", "payment_entry": pe.name, "reference": [doctype, name]}


def receive_refund(connector, event: PaymentEvent, inbound_request) -> dict:
	original = frappe.db.get_value(
		"Payment Entry",
		{"reference_no": event.payment_id, "docstatus": 1, "payment_type": "Receive"},
		["name", "paid_to"],
		as_dict=True,
	)
	ref = original and frappe.db.get_value(
		"Payment Entry Reference",
		{"parent": original.name, "parenttype": "Payment Entry"},
		["reference_doctype", "reference_name"],
		as_dict=True,
	)
	if not ref:
		return park(
			connector,
			event,
			inbound_request,
			_("a refund of {0}, which no Payment Entry here records").format(event.payment_id),
		)
	doc = frappe.get_doc(ref.reference_doctype, ref.reference_name)
	if event.currency != (doc.currency or "").upper():
		return park(
			connector,
			event,
			inbound_request,
			_("refunded in {0}, {1} {2} is in {3}").format(
				event.currency, _(doc.doctype), doc.name, doc.currency
			),
		)
	pe = entries.refund(
		connector,
		doc,
		event.amount,
		event.transaction_id,
		event.posted_at,
		remarks_of(event, original.name),
		bank_account=original.paid_to,
	)
	return {"action": "refunded", "payment_entry": pe.name, "refunds": original.name}


def remarks_of(event: PaymentEvent, original: str | None = None) -> str:
	what = _("{0} refund {1} of payment {2}").format(event.provider, event.transaction_id, event.payment_id)
	if event.kind == PAYMENT:
		what = _("{0} payment {1}").format(event.provider, event.transaction_id)
	if original:
		what += " " + _("(reverses {0})").format(original)
	return what + " " + _("(event {0})").format(event.event_id) if event.event_id else what


def park(connector, event: PaymentEvent, inbound_request: str | None, reason: str) -> dict:
	"""Keep a payment that cannot be recorded by itself for someone to allocate in Desk."""
	doc = frappe.get_doc(
		{
			"doctype": PARKED_PAYMENT,
			"status": "Open",
			"connector": connector.name,
			"provider": event.provider,
			"kind": event.kind,
			"event_type": event.event_type,
			"event_id": event.event_id,
			"transaction_id": event.transaction_id,
			"payment_id": event.payment_id,
			"amount": float(event.amount),
			"currency": event.currency if frappe.db.exists("Currency", event.currency) else None,
			"fee": float(event.fee),
			"email": event.email,
			"reference_doctype": event.reference_doctype,
			"reference_name": event.reference_name,
			"reason": reason,
			"inbound_request": inbound_request,
			"posted_at": event.posted_at,
		}
	).insert(ignore_permissions=True)
	return {"action": "parked", "parked_payment": doc.name, "reason": reason}
