"""Stripe and Razorpay events read into one plain shape: what was paid or refunded, how much, in
what currency, the provider's fee, and the ERPNext document it names (no site needed)."""

from decimal import Decimal

import pytest

from erp_connect.engine import payments
from erp_connect.engine.payments import IGNORED, PAYMENT, REFUND
from erp_connect.engine.transports import kind


def stripe_event(type_, obj, event_id="evt_1"):
	return {"id": event_id, "object": "event", "type": type_, "created": 1764600000, "data": {"object": obj}}


def payment_intent(**overrides):
	return {
		"id": "pi_3Q1",
		"object": "payment_intent",
		"amount": 12050,
		"amount_received": 12050,
		"currency": "usd",
		"status": "succeeded",
		"metadata": {"erpnext_invoice": "ACC-SINV-2026-00001"},
		"latest_charge": "ch_3Q1",
		"receipt_email": "a@example.com",
		**overrides,
	}


def test_a_succeeded_payment_intent_is_a_payment_against_the_named_invoice():
	event = payments.read_stripe(stripe_event("payment_intent.succeeded", payment_intent()))
	assert event.kind == PAYMENT
	assert (event.provider, event.event_id, event.transaction_id, event.payment_id) == (
		"Stripe",
		"evt_1",
		"pi_3Q1",
		"pi_3Q1",
	)
	assert (event.amount, event.currency, event.fee) == (Decimal("120.50"), "USD", Decimal("0"))
	assert (event.reference_doctype, event.reference_name) == ("Sales Invoice", "ACC-SINV-2026-00001")
	assert event.posted_at == 1764600000


def test_a_charge_names_its_payment_intent_and_brings_the_fee_of_an_expanded_balance_transaction():
	charge = {
		"id": "ch_3Q1",
		"object": "charge",
		"amount": 12050,
		"amount_captured": 12050,
		"currency": "usd",
		"payment_intent": "pi_3Q1",
		"metadata": {"erpnext_order": "SAL-ORD-2026-00007"},
		"balance_transaction": {"id": "txn_1", "fee": 379, "currency": "usd", "net": 11671},
	}
	event = payments.read_stripe(stripe_event("charge.succeeded", charge))
	assert (event.kind, event.payment_id, event.transaction_id) == (PAYMENT, "pi_3Q1", "pi_3Q1")
	assert event.fee == Decimal("3.79")
	assert (event.reference_doctype, event.reference_name) == ("Sales Order", "SAL-ORD-2026-00007")
	# a fee settled in another currency than the charge's is not this payment's to deduct
	charge["balance_transaction"] = {"id": "txn_1", "fee": 300, "currency": "eur"}
	assert payments.read_stripe(stripe_event("charge.succeeded", charge)).fee == Decimal("0")
	# an unexpanded balance transaction (an id) carries no fee
	charge["balance_transaction"] = "txn_1"
	assert payments.read_stripe(stripe_event("charge.succeeded", charge)).fee == Decimal("0")


def test_a_charge_that_names_nothing_waits_for_its_payment_intent():
	# Stripe does not copy the payment intent's metadata to the charge
	charge = {"id": "ch_1", "object": "charge", "amount": 100, "currency": "usd", "payment_intent": "pi_1"}
	event = payments.read_stripe(stripe_event("charge.succeeded", charge))
	assert (event.kind, event.reason) == (IGNORED, "a charge of pi_1, recorded from its payment intent")
	# a charge without a payment intent (the Charges API) is a payment of its own
	del charge["payment_intent"]
	assert payments.read_stripe(stripe_event("charge.succeeded", charge)).transaction_id == "ch_1"


def test_a_payment_intent_with_an_expanded_latest_charge_brings_its_fee():
	pi = payment_intent(latest_charge={"id": "ch_1", "balance_transaction": {"fee": 50, "currency": "usd"}})
	assert payments.read_stripe(stripe_event("payment_intent.succeeded", pi)).fee == Decimal("0.50")


def test_zero_decimal_currencies_are_not_divided():
	pi = payment_intent(amount_received=5000, currency="jpy")
	event = payments.read_stripe(stripe_event("payment_intent.succeeded", pi))
	assert (event.amount, event.currency) == (Decimal("5000"), "JPY")
	assert payments.from_minor(12345, "KWD") == Decimal("12.345")


def test_stripe_refunds():
	refund = {
		"id": "re_3Q1",
		"object": "refund",
		"amount": 2000,
		"currency": "usd",
		"payment_intent": "pi_3Q1",
		"charge": "ch_3Q1",
		"status": "succeeded",
		"metadata": {},
	}
	event = payments.read_stripe(stripe_event("refund.created", refund))
	assert (event.kind, event.transaction_id, event.payment_id, event.amount) == (
		REFUND,
		"re_3Q1",
		"pi_3Q1",
		Decimal("20.00"),
	)
	pending = payments.read_stripe(stripe_event("refund.created", {**refund, "status": "pending"}))
	assert pending.kind == IGNORED
	assert payments.read_stripe(stripe_event("refund.updated", refund)).kind == REFUND
	charge = {
		"id": "ch_3Q1",
		"object": "charge",
		"payment_intent": "pi_3Q1",
		"currency": "usd",
		"amount_refunded": 2000,
		"refunds": {"data": [refund]},
	}
	from_charge = payments.read_stripe(stripe_event("charge.refunded", charge))
	assert (from_charge.kind, from_charge.transaction_id, from_charge.amount) == (
		REFUND,
		"re_3Q1",
		Decimal("20"),
	)


@pytest.mark.parametrize(
	"type_, obj",
	[
		("customer.created", {"id": "cus_1"}),
		("payment_intent.succeeded", payment_intent(status="processing")),
		("charge.refunded", {"id": "ch_1", "payment_intent": "pi_1", "refunds": {"data": []}}),
	],
)
def test_other_stripe_events_are_ignored_with_a_reason(type_, obj):
	event = payments.read_stripe(stripe_event(type_, obj))
	assert event.kind == IGNORED
	assert event.reason


def razorpay_captured(**overrides):
	entity = {
		"id": "pay_GwUwfzZD7hnooU",
		"entity": "payment",
		"amount": 50000,
		"currency": "INR",
		"status": "captured",
		"order_id": "order_GwUvksWDBcSdw9",
		"captured": True,
		"email": "gaurav.kumar@example.com",
		"notes": {"erpnext_invoice": "ACC-SINV-2026-00002"},
		"fee": 1180,
		"tax": 180,
		"created_at": 1764600000,
		**overrides,
	}
	return {
		"entity": "event",
		"account_id": "acc_Gw1LiFWVLVRYkG",
		"event": "payment.captured",
		"contains": ["payment"],
		"payload": {"payment": {"entity": entity}},
		"created_at": 1764600005,
	}


def test_a_captured_razorpay_payment_is_a_payment_with_its_fee_in_paise():
	event = payments.read_razorpay(razorpay_captured(), event_id="KxYz1")
	assert event.kind == PAYMENT
	assert (event.transaction_id, event.payment_id, event.event_id) == (
		"pay_GwUwfzZD7hnooU",
		"pay_GwUwfzZD7hnooU",
		"KxYz1",
	)
	# Razorpay's fee already includes its tax
	assert (event.amount, event.currency, event.fee) == (Decimal("500"), "INR", Decimal("11.80"))
	assert (event.reference_doctype, event.reference_name) == ("Sales Invoice", "ACC-SINV-2026-00002")


def test_razorpay_notes_may_be_an_empty_list():
	event = payments.read_razorpay(razorpay_captured(notes=[], fee=None))
	assert (event.reference_doctype, event.reference_name, event.fee) == (None, None, Decimal("0"))


def test_razorpay_refunds():
	body = {
		"entity": "event",
		"event": "refund.processed",
		"contains": ["refund", "payment"],
		"payload": {
			"refund": {
				"entity": {
					"id": "rfnd_Heax5rxucwf2aS",
					"entity": "refund",
					"amount": 4000,
					"currency": "INR",
					"payment_id": "pay_HeGCvvjQIAjsvZ",
					"notes": [],
					"status": "processed",
					"created_at": 1627528610,
				}
			},
			"payment": {"entity": {"id": "pay_HeGCvvjQIAjsvZ", "notes": {"erpnext_invoice": "X"}}},
		},
	}
	event = payments.read_razorpay(body)
	assert (event.kind, event.transaction_id, event.payment_id, event.amount) == (
		REFUND,
		"rfnd_Heax5rxucwf2aS",
		"pay_HeGCvvjQIAjsvZ",
		Decimal("40"),
	)
	assert event.reference_name == "X"  # the payment's notes when the refund has none
	body["event"] = "refund.created"
	assert payments.read_razorpay(body).kind == REFUND
	body["payload"]["refund"]["entity"]["status"] = "pending"
	assert payments.read_razorpay(body).kind == IGNORED
	assert payments.read_razorpay({"event": "order.paid", "payload": {}}).kind == IGNORED


def test_payment_kinds_are_inbound_only_and_read_their_own_events():
	stripe, razorpay = kind("Stripe"), kind("Razorpay")
	assert not stripe.calls_out and not razorpay.calls_out
	assert stripe.receives == razorpay.receives == "payments"
	assert kind("Webhook").receives == "records"
	assert stripe.receive_scheme == "Stripe" and razorpay.receive_scheme == "Razorpay"
	pi = stripe_event("payment_intent.succeeded", payment_intent())
	assert stripe.read_payment(pi, "evt_1").transaction_id == "pi_3Q1"
	assert razorpay.read_payment(razorpay_captured(), "K1").event_id == "K1"
