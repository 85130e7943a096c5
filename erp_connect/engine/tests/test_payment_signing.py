"""Stripe's and Razorpay's webhook signatures, and the registry of receive schemes the inbox
verifies with (no site needed)."""

import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from erp_connect.engine import receive_schemes, signing
from erp_connect.engine.signing import WebhookVerificationError

STRIPE_SECRET = "whsec_test_5f8d2c1a9b7e4f3a2d1c0b9a8e7f6d5c"
RAZORPAY_SECRET = "rzp_webhook_secret_1"
T = 1_764_600_000
BODY = b'{"id": "evt_1QxYz", "type": "payment_intent.succeeded", "data": {"object": {}}}'


def stripe_v1(secret: str, timestamp: int, body: bytes) -> str:
	"""Stripe's scheme written out from its documentation: hex HMAC-SHA256 of "{t}.{body}", keyed
	with the whole endpoint secret string (whsec_ prefix included) as bytes."""
	return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


# -- Stripe ---------------------------------------------------------------------------------------
def test_stripe_signature_is_the_documented_hmac_with_the_whole_secret_as_key():
	header = signing.stripe_signature_header(STRIPE_SECRET, BODY, T)
	assert header == f"t={T},v1={stripe_v1(STRIPE_SECRET, T, BODY)}"
	assert signing.verify_stripe(STRIPE_SECRET, header, BODY, now=T) == T


def test_stripe_accepts_any_of_several_v1_signatures_and_ignores_v0():
	old, new = "whsec_old_secret", STRIPE_SECRET
	header = f"t={T},v1={stripe_v1(old, T, BODY)},v1={stripe_v1(new, T, BODY)},v0=deadbeef"
	assert signing.verify_stripe(new, header, BODY, now=T) == T
	assert signing.verify_stripe(old, header, BODY, now=T) == T
	# a sender rolling its secret signs with both
	both = signing.stripe_signature_header([old, new], BODY, T)
	assert both.count("v1=") == 2
	assert signing.verify_stripe(new, both, BODY, now=T) == T


@pytest.mark.parametrize("skew", [-301, 301, 86400])
def test_stripe_refuses_timestamps_outside_five_minutes_either_way(skew):
	header = signing.stripe_signature_header(STRIPE_SECRET, BODY, T)
	with pytest.raises(WebhookVerificationError, match="tolerance"):
		signing.verify_stripe(STRIPE_SECRET, header, BODY, now=T + skew)


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_stripe_accepts_the_edge_of_the_tolerance(skew):
	header = signing.stripe_signature_header(STRIPE_SECRET, BODY, T)
	assert signing.verify_stripe(STRIPE_SECRET, header, BODY, now=T + skew) == T


def test_stripe_refuses_a_changed_body_timestamp_or_secret():
	header = signing.stripe_signature_header(STRIPE_SECRET, BODY, T)
	with pytest.raises(WebhookVerificationError, match="no matching signature"):
		signing.verify_stripe(STRIPE_SECRET, header, BODY + b" ", now=T)
	moved = header.replace(f"t={T}", f"t={T + 1}")
	with pytest.raises(WebhookVerificationError, match="no matching signature"):
		signing.verify_stripe(STRIPE_SECRET, moved, BODY, now=T)
	with pytest.raises(WebhookVerificationError, match="no matching signature"):
		signing.verify_stripe("whsec_another", header, BODY, now=T)


@pytest.mark.parametrize(
	"header, reason",
	[
		(None, "missing"),
		("", "missing"),
		("v1=abc", "no timestamp"),
		(f"t={T}", "no v1 signature"),
		(f"t={T},v0=abc", "no v1 signature"),
		("t=soon,v1=abc", "timestamp is not an integer"),
		(f"t={T},t={T},v1=abc", "more than one timestamp"),
		("garbage", "malformed"),
		(f"t={T},,v1", "malformed"),
	],
)
def test_stripe_refuses_malformed_headers_with_a_reason(header, reason):
	with pytest.raises(WebhookVerificationError, match=reason):
		signing.verify_stripe(STRIPE_SECRET, header, BODY, now=T)


def test_stripe_needs_a_secret():
	header = signing.stripe_signature_header(STRIPE_SECRET, BODY, T)
	with pytest.raises(WebhookVerificationError, match="no signing secret"):
		signing.verify_stripe(None, header, BODY, now=T)


def test_stripe_compares_in_constant_time(monkeypatch):
	compared = []
	real = hmac.compare_digest

	def spy(a, b):
		compared.append((a, b))
		return real(a, b)

	monkeypatch.setattr(signing.hmac, "compare_digest", spy)
	good = stripe_v1(STRIPE_SECRET, T, BODY)
	header = f"t={T},v1={good},v1={'0' * 64}"
	signing.verify_stripe(STRIPE_SECRET, header, BODY, now=T)
	# every candidate is compared (no early exit on the first match), and only by compare_digest
	assert len(compared) == 2


@given(body=st.binary(max_size=1024))
def test_stripe_any_body_round_trips_and_a_flipped_byte_fails(body):
	header = signing.stripe_signature_header(STRIPE_SECRET, body, T)
	assert signing.verify_stripe(STRIPE_SECRET, header, body, now=T) == T
	if body:
		with pytest.raises(WebhookVerificationError):
			signing.verify_stripe(STRIPE_SECRET, header, bytes([body[0] ^ 1]) + body[1:], now=T)


# -- Razorpay -------------------------------------------------------------------------------------
def test_razorpay_signature_is_the_hex_hmac_of_the_raw_body():
	expected = hmac.new(RAZORPAY_SECRET.encode(), BODY, hashlib.sha256).hexdigest()
	assert signing.razorpay_signature(RAZORPAY_SECRET, BODY) == expected
	signing.verify_razorpay(RAZORPAY_SECRET, expected, BODY)
	signing.verify_razorpay(RAZORPAY_SECRET, expected.upper(), BODY)  # hex is hex, whatever its case


@pytest.mark.parametrize("signature", [None, "", "abc", "zz" * 32])
def test_razorpay_refuses_missing_or_malformed_signatures(signature):
	with pytest.raises(WebhookVerificationError):
		signing.verify_razorpay(RAZORPAY_SECRET, signature, BODY)


def test_razorpay_refuses_another_secret_or_body():
	signature = signing.razorpay_signature(RAZORPAY_SECRET, BODY)
	with pytest.raises(WebhookVerificationError, match="does not match"):
		signing.verify_razorpay("other", signature, BODY)
	with pytest.raises(WebhookVerificationError, match="does not match"):
		signing.verify_razorpay(RAZORPAY_SECRET, signature, BODY + b"\n")


# -- the registry the inbox uses ------------------------------------------------------------------
def test_every_scheme_the_connector_offers_is_registered():
	assert set(receive_schemes.SCHEMES) == {
		"Standard Webhooks",
		"HMAC-SHA256 Header",
		"Stripe",
		"Razorpay",
		"EasyPost HMAC",
		"HubSpot v3",
	}
	with pytest.raises(KeyError):
		receive_schemes.scheme("Carrier Pigeon")


def test_stripe_scheme_returns_the_event_id_of_the_signed_body():
	body = json.dumps({"id": "evt_3Abc", "type": "charge.succeeded"}).encode()
	headers = {"stripe-signature": signing.stripe_signature_header(STRIPE_SECRET, body, T)}
	stripe = receive_schemes.scheme("Stripe")
	assert stripe.verify(STRIPE_SECRET, headers, body, {}, now=T) == "evt_3Abc"
	assert stripe.signs_delivery_id  # the id is inside the signed body
	with pytest.raises(WebhookVerificationError, match="tolerance"):
		stripe.verify(STRIPE_SECRET, headers, body, {}, now=T + 301)
	unnamed = b'{"type": "charge.succeeded"}'
	headers = {"stripe-signature": signing.stripe_signature_header(STRIPE_SECRET, unnamed, T)}
	with pytest.raises(WebhookVerificationError, match="no event id"):
		stripe.verify(STRIPE_SECRET, headers, unnamed, {}, now=T)


def test_stripe_scheme_checks_the_secret_shape():
	stripe = receive_schemes.scheme("Stripe")
	assert stripe.secret_problem("whsec_abc") == ""
	assert "whsec_" in stripe.secret_problem("sk_live_123")


def test_razorpay_scheme_uses_its_own_headers():
	razorpay = receive_schemes.scheme("Razorpay")
	signature = signing.razorpay_signature(RAZORPAY_SECRET, BODY)
	headers = {"x-razorpay-signature": signature, "x-razorpay-event-id": "KxYz123"}
	assert razorpay.verify(RAZORPAY_SECRET, headers, BODY, {}) == "KxYz123"
	assert not razorpay.signs_delivery_id  # the event id header is not signed
	del headers["x-razorpay-event-id"]
	assert razorpay.verify(RAZORPAY_SECRET, headers, BODY, {}).startswith("sha256:")
	with pytest.raises(WebhookVerificationError, match="missing"):
		razorpay.verify(RAZORPAY_SECRET, {}, BODY, {})


def test_the_older_schemes_behave_as_before():
	whsec = signing.generate_secret()
	headers = signing.signature_headers(whsec, "msg_1", BODY, T)
	standard = receive_schemes.scheme("Standard Webhooks")
	assert standard.verify(whsec, headers, BODY, {}, now=T) == "msg_1"
	assert standard.signs_delivery_id
	assert "whsec_" in standard.secret_problem("plain")

	shop = receive_schemes.scheme("HMAC-SHA256 Header")
	import base64

	digest = base64.b64encode(hmac.new(b"shpss", BODY, hashlib.sha256).digest()).decode()
	settings = {"signature_header": "X-Shopify-Hmac-Sha256", "id_header": "X-Shopify-Webhook-Id"}
	headers = {"x-shopify-hmac-sha256": digest, "x-shopify-webhook-id": "abc"}
	assert shop.verify("shpss", headers, BODY, settings) == "abc"
	assert shop.missing_settings({}) == ["Signature Header"]
	assert shop.missing_settings(settings) == []
	assert receive_schemes.scheme("Stripe").missing_settings({}) == []
