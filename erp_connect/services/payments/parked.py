"""Parked payments allocated from Desk: the manager picks the document, the connector's API user
writes the Payment Entry, under the same lock and the same once-only check as the webhooks."""

import frappe
from frappe import _

from erp_connect.engine.payments import PAYMENT
from erp_connect.services.common.users import run_as_api_user
from erp_connect.services.payments import entries


def allocate(parked: "frappe.Document", reference_doctype: str, reference_name: str) -> str:
	manager = frappe.session.user
	connector = frappe.get_doc("Connector", parked.connector)
	with run_as_api_user(connector.api_user, _("Connector {0}").format(connector.name)):
		entries.hold(parked.transaction_id)
		status = frappe.db.get_value("Parked Payment", parked.name, "status", for_update=True)
		if status != "Open":
			frappe.throw(_("Parked Payment {0} is {1} already").format(parked.name, _(status)))
		name = entries.recorded(parked.transaction_id) or _record(
			connector, parked, reference_doctype, reference_name
		)
	parked.db_set({"status": "Allocated", "payment_entry": name, "allocated_by": manager})
	return name


def _record(connector, parked, reference_doctype: str, reference_name: str) -> str:
	doc = entries.payable(reference_doctype, reference_name)
	if (parked.currency or "") != doc.currency:
		frappe.throw(
			_("This payment is in {0} and {1} {2} in {3}: allocate it to a document in {0}").format(
				parked.currency, _(reference_doctype), reference_name, doc.currency
			)
		)
	remarks = _("{0} {1} {2}, allocated from {3}").format(
		parked.provider, _(parked.kind).lower(), parked.transaction_id, parked.name
	)
	posted_at = parked.posted_at or None
	if parked.kind == PAYMENT:
		pe = entries.receive(
			connector, doc, parked.amount, parked.fee, parked.transaction_id, posted_at, remarks
		)
	else:
		pe = entries.refund(connector, doc, parked.amount, parked.transaction_id, posted_at, remarks)
	return pe.name
