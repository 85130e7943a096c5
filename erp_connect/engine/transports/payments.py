"""Payment platforms (Stripe, Razorpay): they only call us, with signed webhooks of payments and
refunds. Each kind names its signature scheme and how to read its events; the inbox hands their
deliveries to the payments receiver (``receives = "payments"``) instead of the upsert path."""

from collections.abc import Mapping

from erp_connect.engine import payments
from erp_connect.engine.transports.webhook import InboundOnly


class PaymentPlatform(InboundOnly):
	receives = "payments"
	receive_scheme = ""

	@staticmethod
	def read_payment(event: Mapping, event_id: str) -> payments.PaymentEvent:
		raise NotImplementedError


class StripeTransport(PaymentPlatform):
	receive_scheme = "Stripe"
	read_payment = staticmethod(payments.read_stripe)


class RazorpayTransport(PaymentPlatform):
	receive_scheme = "Razorpay"
	read_payment = staticmethod(payments.read_razorpay)
