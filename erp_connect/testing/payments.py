"""Fakes of Stripe and Razorpay as their webhook senders: they build the platforms' own payload
shapes (amounts in minor units, ids with the platforms' prefixes, metadata / notes), sign them the
platforms' way (``Stripe-Signature: t=…,v1=…``, ``X-Razorpay-Signature``) and POST them over real
HTTP to the site's receive endpoint, as the platforms do, one thread per delivery when asked to
send several at once."""

import json
import threading
import time

import frappe
import requests

from erp_connect.engine import signing


def _id(prefix: str) -> str:
	return f"{prefix}_{frappe.generate_hash(length=14)}"


class FakePlatform:
	def __init__(self, base_url: str, session: requests.Session, connector: str, secret: str):
		self.url = f"{base_url}/api/method/erp_connect.api.v1.receive"
		self.session = session
		self.connector = connector
		self.secret = secret

	def post(self, body: bytes, headers: dict) -> requests.Response:
		return self.session.post(
			self.url,
			params={"connector": self.connector},
			data=body,
			headers={"Content-Type": "application/json", "User-Agent": type(self).__name__, **headers},
			timeout=60,
		)

	def post_at_once(self, deliveries: list[tuple[bytes, dict]]) -> list[requests.Response]:
		"""Several deliveries sent at the same moment, each from its own thread."""
		answers: list = [None] * len(deliveries)
		start = threading.Barrier(len(deliveries))

		def send(i, body, headers):
			start.wait()
			answers[i] = self.post(body, headers)

		threads = [threading.Thread(target=send, args=(i, *d)) for i, d in enumerate(deliveries)]
		for t in threads:
			t.start()
		for t in threads:
			t.join(90)
		return answers


class FakeStripe(FakePlatform):
	"""Stripe's events: ``{"id": "evt_…", "object": "event", "type": …, "data": {"object": …}}``."""

	def event(self, type_: str, obj: dict, event_id: str | None = None) -> dict:
		return {
			"id": event_id or _id("evt"),
			"object": "event",
			"api_version": "2024-06-20",
			"created": int(time.time()),
			"livemode": False,
			"pending_webhooks": 1,
			"request": {"id": _id("req"), "idempotency_key": None},
			"type": type_,
			"data": {"object": obj},
		}

	def payment_intent(self, amount: int, currency="usd", metadata=None, pi_id=None, fee=None) -> dict:
		"""With ``fee``, its latest charge expanded with its balance transaction (as a payload
		fetched with ``expand`` carries it; Stripe's own webhooks send ids)."""
		pi_id = pi_id or _id("pi")
		pi = {
			"id": pi_id,
			"object": "payment_intent",
			"amount": amount,
			"amount_received": amount,
			"currency": currency,
			"status": "succeeded",
			"capture_method": "automatic",
			"latest_charge": _id("ch"),
			"metadata": metadata or {},
			"receipt_email": "buyer@example.com",
			"created": int(time.time()),
		}
		if fee is not None:
			pi["latest_charge"] = self.charge(pi, fee)
		return pi

	def charge(self, pi: dict, fee: int | None = None, metadata=None) -> dict:
		"""The charge of a payment intent; with ``fee``, its balance transaction expanded. Stripe
		does not copy the payment intent's metadata to it: ``metadata`` is the charge's own."""
		charge_id = pi["latest_charge"]
		charge = {
			"id": charge_id if isinstance(charge_id, str) else charge_id["id"],
			"object": "charge",
			"amount": pi["amount"],
			"amount_captured": pi["amount_received"],
			"amount_refunded": 0,
			"captured": True,
			"currency": pi["currency"],
			"paid": True,
			"payment_intent": pi["id"],
			"status": "succeeded",
			"metadata": metadata or {},
			"billing_details": {"email": "buyer@example.com"},
			"balance_transaction": _id("txn"),
		}
		if fee is not None:
			charge["balance_transaction"] = {
				"id": charge["balance_transaction"],
				"object": "balance_transaction",
				"amount": pi["amount"],
				"currency": pi["currency"],
				"fee": fee,
				"net": pi["amount"] - fee,
				"fee_details": [{"amount": fee, "currency": pi["currency"], "type": "stripe_fee"}],
			}
		return charge

	def refund(self, pi: dict, amount: int) -> dict:
		return {
			"id": _id("re"),
			"object": "refund",
			"amount": amount,
			"currency": pi["currency"],
			"charge": self.charge(pi)["id"],
			"payment_intent": pi["id"],
			"status": "succeeded",
			"reason": "requested_by_customer",
			"metadata": {},
			"created": int(time.time()),
		}

	def signed(
		self, event: dict, timestamp: int | None = None, secret: str | None = None
	) -> tuple[bytes, dict]:
		body = json.dumps(event, indent=2).encode()  # Stripe sends pretty-printed JSON
		header = signing.stripe_signature_header(secret or self.secret, body, timestamp)
		return body, {"Stripe-Signature": header}

	def send(self, event: dict, **signing_options) -> requests.Response:
		return self.post(*self.signed(event, **signing_options))


class FakeRazorpay(FakePlatform):
	"""Razorpay's events: ``{"entity": "event", "event": …, "payload": {"payment": {"entity": …}}}``
	with the event id in ``x-razorpay-event-id``."""

	def payment(self, amount: int, currency="INR", notes=None, fee: int | None = None) -> dict:
		return {
			"id": _id("pay"),
			"entity": "payment",
			"amount": amount,
			"currency": currency,
			"status": "captured",
			"order_id": _id("order"),
			"invoice_id": None,
			"international": False,
			"method": "card",
			"amount_refunded": 0,
			"refund_status": None,
			"captured": True,
			"description": "Test Transaction",
			"email": "buyer@example.com",
			"contact": "+919000090000",
			"notes": notes if notes is not None else [],
			"fee": fee,
			"tax": round(fee * 18 / 118) if fee else None,
			"error_code": None,
			"created_at": int(time.time()),
		}

	def captured(self, payment: dict) -> dict:
		return {
			"entity": "event",
			"account_id": "acc_BFQ7uQEaa7j2z7",
			"event": "payment.captured",
			"contains": ["payment"],
			"payload": {"payment": {"entity": payment}},
			"created_at": int(time.time()),
		}

	def refund_processed(self, payment: dict, amount: int) -> dict:
		refund = {
			"id": _id("rfnd"),
			"entity": "refund",
			"amount": amount,
			"currency": payment["currency"],
			"payment_id": payment["id"],
			"notes": [],
			"receipt": None,
			"acquirer_data": {"arn": None},
			"created_at": int(time.time()),
			"batch_id": None,
			"status": "processed",
			"speed_processed": "normal",
			"speed_requested": "normal",
		}
		return {
			"entity": "event",
			"account_id": "acc_BFQ7uQEaa7j2z7",
			"event": "refund.processed",
			"contains": ["refund", "payment"],
			"payload": {
				"refund": {"entity": refund},
				"payment": {"entity": {**payment, "status": "refunded"}},
			},
			"created_at": int(time.time()),
		}

	def signed(
		self, event: dict, event_id: str | None = None, secret: str | None = None
	) -> tuple[bytes, dict]:
		body = json.dumps(event, separators=(",", ":")).encode()
		return body, {
			"X-Razorpay-Signature": signing.razorpay_signature(secret or self.secret, body),
			"x-razorpay-event-id": event_id or frappe.generate_hash(length=14),
		}

	def send(self, event: dict, **signing_options) -> requests.Response:
		return self.post(*self.signed(event, **signing_options))
