"""Webhook signing and verification: Standard Webhooks (https://www.standardwebhooks.com), a plain
HMAC of the body (Shopify, WooCommerce, Razorpay), Stripe's ``Stripe-Signature`` and HubSpot's v3.

A message is signed as HMAC-SHA256 over ``"{webhook-id}.{webhook-timestamp}.{body}"`` with the
base64-decoded part of a ``whsec_`` secret, and sent as ``webhook-signature: v1,<base64>``. The
header may carry several space-separated signatures so a receiver can rotate keys: it accepts a
message when any of its secrets matches any signature.
"""

import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets
import time
import unicodedata
from collections.abc import Iterable, Mapping

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 5 * 60
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64


class WebhookVerificationError(Exception):
	"""The request is not a fresh message signed with one of our secrets."""


def generate_secret() -> str:
	"""A new random ``whsec_`` secret (32 key bytes)."""
	return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@functools.lru_cache(maxsize=64)  # one per connector: every signed message decodes the same secret
def decode_secret(secret: str) -> bytes:
	"""The HMAC key inside a ``whsec_`` secret; ValueError with a readable reason when malformed."""
	if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
		raise ValueError(f"a signing secret must start with '{SECRET_PREFIX}'")
	try:
		key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
	except (binascii.Error, ValueError):
		raise ValueError("the part after 'whsec_' must be valid base64")
	if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
		raise ValueError(f"the key must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes long, got {len(key)}")
	return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
	"""The ``v1,<base64>`` signature of one message."""
	if isinstance(body, str):
		body = body.encode()
	signed_content = f"{msg_id}.{int(timestamp)}.".encode() + body
	digest = hmac.new(decode_secret(secret), signed_content, hashlib.sha256).digest()
	return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_headers(
	secret_or_secrets: str | Iterable[str] | None,
	msg_id: str,
	body: bytes | str,
	timestamp: int | None = None,
) -> dict[str, str]:
	"""The three Standard Webhooks headers; with several secrets (rotation) every one signs."""
	timestamp = int(time.time()) if timestamp is None else int(timestamp)
	headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
	all_secrets = _as_list(secret_or_secrets)
	if all_secrets:
		headers["webhook-signature"] = " ".join(sign(s, msg_id, timestamp, body) for s in all_secrets)
	return headers


def verify(
	secret_or_secrets: str | Iterable[str],
	headers: Mapping[str, str],
	body: bytes | str,
	tolerance: int = DEFAULT_TOLERANCE_SECONDS,
	now: float | None = None,
) -> str:
	"""Check a received message and return its ``webhook-id``.

	Raises WebhookVerificationError when a header is missing, the timestamp is outside the
	tolerance (either direction), or no signature matches any of the secrets.
	"""
	lowered = {k.lower(): v for k, v in headers.items()}
	msg_id = lowered.get("webhook-id")
	timestamp_header = lowered.get("webhook-timestamp")
	signature_header = lowered.get("webhook-signature")
	if not msg_id or not timestamp_header or not signature_header:
		raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")

	try:
		timestamp = int(timestamp_header)
	except ValueError:
		raise WebhookVerificationError("webhook-timestamp is not an integer")
	all_secrets = _fresh_and_secrets(timestamp, tolerance, now, "webhook-timestamp", secret_or_secrets)
	expected = [sign(s, msg_id, timestamp, body).encode() for s in all_secrets]
	for candidate in signature_header.split():
		if not candidate.startswith(SIGNATURE_VERSION + ","):
			continue
		# compare against every secret without stopping early, so timing tells nothing
		if any([hmac.compare_digest(candidate.encode(), e) for e in expected]):
			return msg_id
	raise WebhookVerificationError("no matching signature")


def verify_hmac_header(
	secret: str, signature: str | None, body: bytes | str, encoding: str = "base64"
) -> None:
	"""Verify a plain HMAC-SHA256 of the body, as Shopify (base64) or others (hex) send it."""
	if not signature:
		raise WebhookVerificationError("missing signature header")
	if isinstance(body, str):
		body = body.encode()
	digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
	expected = base64.b64encode(digest).decode() if encoding == "base64" else digest.hex()
	if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
		raise WebhookVerificationError("signature does not match")


# -- Stripe ---------------------------------------------------------------------------------------
# ``Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>...]``: the hex HMAC-SHA256 of
# ``"{t}.{raw body}"`` keyed with the whole endpoint secret string (``whsec_...``, prefix and all,
# as bytes: unlike Standard Webhooks nothing is base64-decoded). While a secret is being rolled
# Stripe signs with the old and the new one; ``v0`` signatures are test-mode leftovers and ignored.
STRIPE_VERSION = "v1"


def stripe_signature(secret: str, timestamp: int, body: bytes | str) -> str:
	if isinstance(body, str):
		body = body.encode()
	return hmac.new(secret.encode(), f"{int(timestamp)}.".encode() + body, hashlib.sha256).hexdigest()


def stripe_signature_header(
	secret_or_secrets: str | Iterable[str], body: bytes | str, timestamp: int | None = None
) -> str:
	"""The ``Stripe-Signature`` value Stripe would send (one ``v1`` per secret)."""
	timestamp = int(time.time()) if timestamp is None else int(timestamp)
	signatures = [
		f"{STRIPE_VERSION}={stripe_signature(s, timestamp, body)}" for s in _as_list(secret_or_secrets)
	]
	return ",".join([f"t={timestamp}", *signatures])


def verify_stripe(
	secret_or_secrets: str | Iterable[str] | None,
	header: str | None,
	body: bytes | str,
	tolerance: int = DEFAULT_TOLERANCE_SECONDS,
	now: float | None = None,
) -> int:
	"""Check a ``Stripe-Signature`` header; returns its timestamp. Raises WebhookVerificationError
	for a missing or malformed header, a timestamp outside the tolerance (either direction), or no
	``v1`` matching any of the secrets."""
	timestamp, candidates = _parse_stripe_header(header)
	all_secrets = _fresh_and_secrets(
		timestamp, tolerance, now, "Stripe-Signature timestamp", secret_or_secrets
	)
	expected = [stripe_signature(s, timestamp, body).encode() for s in all_secrets]
	# every candidate against every secret, without stopping early, so timing tells nothing
	matches = [hmac.compare_digest(c.encode(), e) for c in candidates for e in expected]
	if not any(matches):
		raise WebhookVerificationError("no matching signature")
	return timestamp


def _parse_stripe_header(header: str | None) -> tuple[int, list[str]]:
	if not header:
		raise WebhookVerificationError("missing Stripe-Signature header")
	timestamps, candidates = [], []
	for part in header.split(","):
		key, sep, value = part.strip().partition("=")
		if not sep or not key or not value:
			raise WebhookVerificationError("malformed Stripe-Signature header")
		if key == "t":
			timestamps.append(value)
		elif key == STRIPE_VERSION:
			candidates.append(value)
	if not timestamps:
		raise WebhookVerificationError("Stripe-Signature has no timestamp")
	if len(timestamps) > 1:
		raise WebhookVerificationError("Stripe-Signature has more than one timestamp")
	if not candidates:
		raise WebhookVerificationError("Stripe-Signature has no v1 signature")
	try:
		return int(timestamps[0]), candidates
	except ValueError:
		raise WebhookVerificationError("Stripe-Signature timestamp is not an integer")


# -- Razorpay -------------------------------------------------------------------------------------
# ``X-Razorpay-Signature``: the hex HMAC-SHA256 of the raw body keyed with the webhook secret.
def razorpay_signature(secret: str, body: bytes | str) -> str:
	if isinstance(body, str):
		body = body.encode()
	return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_razorpay(secret: str, signature: str | None, body: bytes | str) -> None:
	verify_hmac_header(secret, (signature or "").strip().lower() or None, body, encoding="hex")


# -- EasyPost -------------------------------------------------------------------------------------
EASYPOST_HEADER = "X-Hmac-Signature"
EASYPOST_PREFIX = "hmac-sha256-hex="


def easypost_signature(secret: str, body: bytes | str) -> str:
	"""EasyPost's ``X-Hmac-Signature``: ``hmac-sha256-hex=`` + the hex HMAC-SHA256 of the raw body,
	keyed with the webhook secret NFKD-normalized and UTF-8 encoded (as its client libraries do)."""
	if isinstance(body, str):
		body = body.encode()
	key = unicodedata.normalize("NFKD", secret).encode("utf-8")
	return EASYPOST_PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_easypost(secret: str, signature: str | None, body: bytes | str) -> None:
	"""Verify an EasyPost webhook's ``X-Hmac-Signature`` (constant-time compare)."""
	if not secret:
		raise WebhookVerificationError("no signing secret is configured")
	if not signature:
		raise WebhookVerificationError(f"missing {EASYPOST_HEADER} header")
	expected = easypost_signature(secret, body)
	if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
		raise WebhookVerificationError("signature does not match")


def _fresh_and_secrets(
	timestamp: int, tolerance: int, now: float | None, what: str, secret_or_secrets
) -> list[str]:
	"""The secrets to check a signature with, once its timestamp is within the tolerance (either
	direction); WebhookVerificationError otherwise, or when no secret is configured."""
	now = time.time() if now is None else now
	if abs(now - timestamp) > tolerance:
		raise WebhookVerificationError(f"{what} is outside the allowed tolerance")
	all_secrets = _as_list(secret_or_secrets)
	if not all_secrets:
		raise WebhookVerificationError("no signing secret is configured")
	return all_secrets


def _as_list(secret_or_secrets: str | Iterable[str] | None) -> list[str]:
	if not secret_or_secrets:
		return []
	if isinstance(secret_or_secrets, str):
		return [secret_or_secrets]
	return [s for s in secret_or_secrets if s]


# -- HubSpot --------------------------------------------------------------------------------------
# ``X-HubSpot-Signature-v3``: the base64 HMAC-SHA256, keyed with the app's client secret, of
# method + URI + body + ``X-HubSpot-Request-Timestamp`` (Unix milliseconds), where the URI is the full
# URL HubSpot called with a few percent-escapes decoded as its docs list; 5 minutes of freshness.
HUBSPOT_HEADER = "X-HubSpot-Signature-v3"
HUBSPOT_TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
HUBSPOT_DECODED = {
	"%3A": ":",
	"%2F": "/",
	"%3F": "?",
	"%40": "@",
	"%21": "!",
	"%24": "$",
	"%27": "'",
	"%28": "(",
	"%29": ")",
	"%2A": "*",
	"%2C": ",",
	"%3B": ";",
}
_HUBSPOT_ESCAPE = re.compile("|".join(HUBSPOT_DECODED), re.IGNORECASE)


def hubspot_uri(url: str) -> str:
	"""The URI as HubSpot signs it: these escapes decoded, every other one left as it is."""
	return _HUBSPOT_ESCAPE.sub(lambda m: HUBSPOT_DECODED[m.group(0).upper()], url)


def hubspot_signature(secret: str, method: str, url: str, body: bytes | str, timestamp_ms: int | str) -> str:
	if isinstance(body, bytes):
		body = body.decode("utf-8")
	source = f"{method.upper()}{hubspot_uri(url)}{body}{timestamp_ms}".encode()
	return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


def verify_hubspot(
	secret: str | None,
	signature: str | None,
	timestamp_header: str | None,
	method: str,
	urls: Iterable[str],
	body: bytes | str,
	tolerance: int = DEFAULT_TOLERANCE_SECONDS,
	now: float | None = None,
) -> int:
	"""Check a HubSpot v3 signature against the URLs the request may have been called at (the site
	behind a proxy sees http where HubSpot called https); returns the timestamp in milliseconds.
	WebhookVerificationError for a missing header, a stale or future timestamp, or no match."""
	if not signature or not timestamp_header:
		raise WebhookVerificationError(f"missing {HUBSPOT_HEADER} or {HUBSPOT_TIMESTAMP_HEADER} header")
	try:
		timestamp_ms = int(timestamp_header)
	except ValueError:
		raise WebhookVerificationError(f"{HUBSPOT_TIMESTAMP_HEADER} is not an integer")
	_fresh_and_secrets(timestamp_ms / 1000, tolerance, now, HUBSPOT_TIMESTAMP_HEADER, secret)
	try:
		expected = [hubspot_signature(secret, method, u, body, timestamp_header).encode() for u in urls]
	except UnicodeDecodeError:
		raise WebhookVerificationError("the body is not UTF-8")
	# every URL without stopping early, so timing tells nothing
	if not any([hmac.compare_digest(signature.strip().encode(), e) for e in expected]):
		raise WebhookVerificationError("no matching signature")
	return timestamp_ms
