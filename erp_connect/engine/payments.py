"""Payment platforms' events read into one plain shape (no frappe): a payment or a refund, its
provider id, amount and fee in major units, its currency, and the ERPNext document it names.

A payment names its document in its metadata (Stripe) or notes (Razorpay):
``erpnext_invoice`` = a Sales Invoice name, or ``erpnext_order`` = a Sales Order name. Everything
else a platform sends (customers, disputes, payouts, pending refunds) is IGNORED with a reason.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

PAYMENT = "Payment"
REFUND = "Refund"
IGNORED = "Ignored"

REFERENCE_KEYS = {"erpnext_invoice": "Sales Invoice", "erpnext_order": "Sales Order"}

# currencies whose amounts platforms send without minor units, or with three decimals
ZERO_DECIMAL = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
THREE_DECIMAL = frozenset("BHD JOD KWD OMR TND".split())


@dataclass(frozen=True)
class PaymentEvent:
	kind: str  # PAYMENT, REFUND or IGNORED
	provider: str
	event_type: str
	event_id: str = ""
	transaction_id: str = ""  # what this event records: the payment's id, or the refund's
	payment_id: str = ""  # the payment (for a refund: the payment refunded)
	amount: Decimal = Decimal("0")
	currency: str = ""
	fee: Decimal = Decimal("0")
	reference_doctype: str | None = None
	reference_name: str | None = None
	posted_at: int | None = None  # unix time
	email: str | None = None
	reason: str = ""  # why an event is IGNORED


def from_minor(amount, currency: str) -> Decimal:
	"""An amount in the currency's smallest unit (cents, paise) in major units."""
	currency = (currency or "").upper()
	places = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
	return Decimal(int(amount or 0)).scaleb(-places)


def reference_of(*metadata) -> tuple[str | None, str | None]:
	"""The (doctype, name) the first metadata/notes naming one names."""
	for meta in metadata:
		if not isinstance(meta, Mapping):  # Razorpay sends empty notes as []
			continue
		for key, doctype in REFERENCE_KEYS.items():
			value = meta.get(key)
			if isinstance(value, str | int) and str(value).strip():
				return doctype, str(value).strip()
	return None, None


def _ignored(provider: str, event_type: str, event_id: str, reason: str) -> PaymentEvent:
	return PaymentEvent(IGNORED, provider, event_type, event_id, reason=reason)


# -- Stripe ---------------------------------------------------------------------------------------
STRIPE = "Stripe"


def read_stripe(event: Mapping, event_id: str | None = None) -> PaymentEvent:
	"""One Stripe event (``{"id": "evt_…", "type": …, "data": {"object": …}}``)."""
	event_type = str(event.get("type") or "")
	event_id = event_id or str(event.get("id") or "")
	obj = (event.get("data") or {}).get("object") or {}
	reader = _STRIPE_READERS.get(event_type)
	if not reader or not isinstance(obj, Mapping):
		return _ignored(
			STRIPE, event_type, event_id, f"{event_type or 'an event without type'} moves no money"
		)
	return reader(event, event_type, event_id, obj)


def _stripe_fee(charge, currency: str) -> Decimal:
	"""The fee of a charge whose balance transaction is expanded in the payload, when it is in the
	charge's currency (a fee settled in another currency is left to the payout's reconciliation)."""
	if not isinstance(charge, Mapping):
		return Decimal("0")
	txn = charge.get("balance_transaction")
	if not isinstance(txn, Mapping) or str(txn.get("currency") or "").upper() != currency:
		return Decimal("0")
	return from_minor(txn.get("fee"), currency)


def _stripe_payment(event, event_type, event_id, obj) -> PaymentEvent:
	currency = str(obj.get("currency") or "").upper()
	if obj.get("object") == "payment_intent":
		if obj.get("status") != "succeeded":
			return _ignored(STRIPE, event_type, event_id, f"payment intent is {obj.get('status')}")
		payment_id, amount = obj.get("id"), obj.get("amount_received") or obj.get("amount")
		charge = obj.get("latest_charge")
		email = obj.get("receipt_email")
	else:  # a charge: recorded under its payment intent, so both events make one payment
		if obj.get("status") not in (None, "succeeded") or obj.get("captured") is False:
			return _ignored(STRIPE, event_type, event_id, "charge is not captured")
		payment_id = obj.get("payment_intent") or obj.get("id")
		amount = obj.get("amount_captured") or obj.get("amount")
		charge = obj
		email = obj.get("receipt_email") or (obj.get("billing_details") or {}).get("email")
	doctype, name = reference_of(
		obj.get("metadata"), charge.get("metadata") if isinstance(charge, Mapping) else None
	)
	if obj.get("object") == "charge" and obj.get("payment_intent") and not doctype:
		# Stripe does not copy a payment intent's metadata to its charges: a charge that names
		# nothing itself is recorded from its payment_intent.succeeded, not parked before it
		return _ignored(
			STRIPE, event_type, event_id, f"a charge of {payment_id}, recorded from its payment intent"
		)
	return PaymentEvent(
		PAYMENT,
		STRIPE,
		event_type,
		event_id,
		transaction_id=str(payment_id),
		payment_id=str(payment_id),
		amount=from_minor(amount, currency),
		currency=currency,
		fee=_stripe_fee(charge, currency),
		reference_doctype=doctype,
		reference_name=name,
		posted_at=event.get("created"),
		email=email,
	)


def _stripe_refund(event, event_type, event_id, obj) -> PaymentEvent:
	if event_type == "charge.refunded":  # a charge: its newest refund
		refunds = ((obj.get("refunds") or {}).get("data")) or []
		if not refunds:
			return _ignored(STRIPE, event_type, event_id, "the charge lists no refund")
		refund, charge = refunds[0], obj
	else:
		refund, charge = obj, {}
	if refund.get("status") not in (None, "succeeded"):
		return _ignored(STRIPE, event_type, event_id, f"refund is {refund.get('status')}")
	currency = str(refund.get("currency") or charge.get("currency") or "").upper()
	payment_id = refund.get("payment_intent") or charge.get("payment_intent") or refund.get("charge")
	doctype, name = reference_of(refund.get("metadata"), charge.get("metadata"))
	return PaymentEvent(
		REFUND,
		STRIPE,
		event_type,
		event_id,
		transaction_id=str(refund.get("id")),
		payment_id=str(payment_id),
		amount=from_minor(refund.get("amount"), currency),
		currency=currency,
		reference_doctype=doctype,
		reference_name=name,
		posted_at=event.get("created"),
	)


_STRIPE_READERS = {
	"payment_intent.succeeded": _stripe_payment,
	"charge.succeeded": _stripe_payment,
	"refund.created": _stripe_refund,
	"refund.updated": _stripe_refund,
	"charge.refunded": _stripe_refund,
}


# -- Razorpay -------------------------------------------------------------------------------------
RAZORPAY = "Razorpay"


def _entity(event: Mapping, name: str) -> Mapping:
	entity = ((event.get("payload") or {}).get(name) or {}).get("entity")
	return entity if isinstance(entity, Mapping) else {}


def read_razorpay(event: Mapping, event_id: str | None = None) -> PaymentEvent:
	"""One Razorpay event (``{"event": …, "payload": {"payment": {"entity": …}}}``); its id comes
	from the ``x-razorpay-event-id`` header."""
	event_type = str(event.get("event") or "")
	event_id = event_id or ""
	if event_type == "payment.captured":
		payment = _entity(event, "payment")
		currency = str(payment.get("currency") or "").upper()
		doctype, name = reference_of(payment.get("notes"))
		return PaymentEvent(
			PAYMENT,
			RAZORPAY,
			event_type,
			event_id,
			transaction_id=str(payment.get("id")),
			payment_id=str(payment.get("id")),
			amount=from_minor(payment.get("amount"), currency),
			currency=currency,
			fee=from_minor(payment.get("fee"), currency),  # Razorpay's fee includes its tax
			reference_doctype=doctype,
			reference_name=name,
			posted_at=payment.get("created_at") or event.get("created_at"),
			email=payment.get("email"),
		)
	if event_type in ("refund.processed", "refund.created"):
		refund, payment = _entity(event, "refund"), _entity(event, "payment")
		if refund.get("status") != "processed":
			return _ignored(RAZORPAY, event_type, event_id, f"refund is {refund.get('status')}")
		currency = str(refund.get("currency") or "").upper()
		doctype, name = reference_of(refund.get("notes"), payment.get("notes"))
		return PaymentEvent(
			REFUND,
			RAZORPAY,
			event_type,
			event_id,
			transaction_id=str(refund.get("id")),
			payment_id=str(refund.get("payment_id") or payment.get("id")),
			amount=from_minor(refund.get("amount"), currency),
			currency=currency,
			reference_doctype=doctype,
			reference_name=name,
			posted_at=refund.get("created_at") or event.get("created_at"),
		)
	return _ignored(RAZORPAY, event_type, event_id, f"{event_type or 'an event without type'} moves no money")
