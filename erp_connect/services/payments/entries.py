"""Payment Entries made with ERPNext's own logic (``get_payment_entry``), idempotent by the
provider's transaction id, which each entry carries as its Reference No."""

from datetime import datetime
from decimal import Decimal

import frappe
from frappe import _
from frappe.utils import flt, getdate

from erp_connect.services.common.locks import lock_until_transaction_ends

LOCK_WAIT_SECONDS = 30
PAYABLE_DOCTYPES = ("Sales Invoice", "Sales Order")


class Busy(frappe.ValidationError):
	"""Another worker is recording the same transaction; the delivery is retried."""


def hold(transaction_id: str) -> None:
	"""Serialise everything done about one provider transaction until this transaction ends."""
	if not lock_until_transaction_ends("payment", transaction_id, LOCK_WAIT_SECONDS):
		raise Busy(_("another worker is recording {0}; it is tried again").format(transaction_id))


def recorded(transaction_id: str) -> str | None:
	"""The Payment Entry (draft or submitted) that records ``transaction_id`` already. A locking
	read: it sees what another worker committed after this transaction began."""
	rows = frappe.db.sql(
		"select name from `tabPayment Entry` where reference_no = %s and docstatus < 2 limit 1 for update",
		transaction_id,
	)
	return rows[0][0] if rows else None


def payable(doctype: str, name: str) -> "frappe.Document":
	"""The submitted Sales Invoice or Sales Order a payment is recorded against."""
	if doctype not in PAYABLE_DOCTYPES:
		frappe.throw(
			_("Payments are recorded against {0}, not {1}").format(" or ".join(PAYABLE_DOCTYPES), doctype)
		)
	doc = frappe.get_doc(doctype, name)
	if doc.docstatus != 1:
		state = _("cancelled") if doc.docstatus == 2 else _("a draft")
		frappe.throw(
			_("{0} {1} is {2}: a payment is recorded against a submitted document").format(
				_(doctype), name, state
			)
		)
	return doc


def outstanding(doc: "frappe.Document") -> float:
	if doc.doctype == "Sales Invoice":
		return flt(doc.outstanding_amount)
	return flt(doc.rounded_total or doc.grand_total) - flt(doc.advance_paid)


def payment_account(connector: "frappe.Document", company: str) -> str | None:
	"""The connector's Payment Account, else its Mode of Payment's account for the company (None:
	ERPNext takes the company's default bank account)."""
	if connector.payment_account:
		return connector.payment_account
	if connector.mode_of_payment:
		return frappe.db.get_value(
			"Mode of Payment Account",
			{"parent": connector.mode_of_payment, "company": company},
			"default_account",
		)
	return None


def receive(
	connector: "frappe.Document",
	doc: "frappe.Document",
	amount: Decimal,
	fee: Decimal,
	transaction_id: str,
	posted_at: int | None,
	remarks: str,
) -> "frappe.Document":
	"""A submitted Receive entry of ``amount`` against ``doc``: allocated up to what is outstanding
	(a partial payment allocates the amount, an overpayment leaves the rest unallocated), the fee a
	deduction against the connector's Fee Account. ERPNext's own rule: the bank gets the net, the
	document is paid the gross, the deduction makes up the difference."""
	from erpnext.accounts.doctype.payment_entry.payment_entry import get_payment_entry

	amount, fee = flt(amount), flt(fee)
	pe = get_payment_entry(
		doc.doctype, doc.name, party_amount=amount, bank_account=payment_account(connector, doc.company)
	)
	for ref in pe.references:
		ref.outstanding_amount = outstanding(doc)
		ref.allocated_amount = max(min(amount, ref.outstanding_amount), 0)
	if fee:
		if not connector.fee_account:
			frappe.throw(
				_("Payment {0} carries a fee of {1}: set the Fee Account on Connector {2}").format(
					transaction_id, fee, connector.name
				)
			)
		pe.paid_amount = pe.received_amount = amount - fee
		pe.append(
			"deductions",
			{
				"account": connector.fee_account,
				"cost_center": connector.fee_cost_center
				or frappe.get_cached_value("Company", doc.company, "cost_center"),
				"amount": fee,
				"description": _("{0} fee").format(connector.connector_type),
			},
		)
	return _finish(pe, connector, transaction_id, posted_at, remarks)


def refund(
	connector: "frappe.Document",
	doc: "frappe.Document",
	amount: Decimal,
	transaction_id: str,
	posted_at: int | None,
	remarks: str,
	bank_account: str | None = None,
) -> "frappe.Document":
	"""A submitted Pay entry of ``amount`` to the customer of ``doc``, from the account the payment
	went to. Unallocated: ERPNext allocates money paid out to a customer only against a negative
	outstanding (a credit note), so the refund stays on the customer's account until Payment
	Reconciliation matches it with the credit note, if one is made."""
	from erpnext.accounts.doctype.payment_entry.payment_entry import get_payment_entry

	pe = get_payment_entry(
		doc.doctype,
		doc.name,
		party_amount=flt(amount),
		bank_account=bank_account or payment_account(connector, doc.company),
		payment_type="Pay",
	)
	pe.set("references", [])
	return _finish(pe, connector, transaction_id, posted_at, remarks)


def _finish(pe, connector, transaction_id, posted_at, remarks) -> "frappe.Document":
	if connector.mode_of_payment:
		pe.mode_of_payment = connector.mode_of_payment
	pe.reference_no = transaction_id
	pe.reference_date = getdate(datetime.fromtimestamp(posted_at)) if posted_at else getdate()
	pe.custom_remarks = 1
	pe.remarks = remarks
	pe.insert()
	pe.submit()
	return pe
