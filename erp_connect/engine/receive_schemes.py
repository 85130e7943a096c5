"""How a received webhook proves who sent it: one small object per signature scheme, looked up by
the name a Connector's Signature Scheme holds. A new scheme is one class and one line in SCHEMES;
the inbox only ever calls ``scheme(name).verify(...)``.

Each scheme returns the delivery id the inbox stores the delivery under (once per connector), and
says whether that id is covered by the signature: when it is not, whoever holds one signed body
could send it again under a new id, so the inbox also takes such a body only once.
"""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from erp_connect.engine import signing
from erp_connect.engine.signing import WebhookVerificationError


def body_id(body: bytes) -> str:
	"""The delivery id of a body that comes without one."""
	return "sha256:" + hashlib.sha256(body).hexdigest()


def signed_event_id(body: bytes) -> str:
	"""The delivery id of a platform that puts its event's ``id`` inside the signed body."""
	try:
		event_id = json.loads(body).get("id")
	except (ValueError, AttributeError):
		event_id = None
	if not event_id or not isinstance(event_id, str):
		raise WebhookVerificationError("the body has no event id")
	return event_id


@dataclass(frozen=True)
class RequestLine:
	"""How a webhook was called: its method, and the URLs it may have been called at (a site
	behind a proxy sees http:// where the sender called https://)."""

	method: str = "POST"
	urls: tuple[str, ...] = ()


class Scheme:
	signs_delivery_id = False

	def verify(
		self,
		secret: str | None,
		headers: Mapping[str, str],
		body: bytes,
		settings: Mapping,
		now=None,
		request: "RequestLine | None" = None,
	) -> str:
		"""The delivery id of a correctly signed (and, where the scheme signs a time, fresh)
		request; WebhookVerificationError otherwise. ``headers`` have lower-case names;
		``settings`` holds the connector's ``signature_header`` and ``id_header``; ``request`` the
		method and URL, for schemes that sign them."""
		raise NotImplementedError

	def secret_problem(self, secret: str) -> str:
		"""Why ``secret`` cannot be this scheme's secret; '' when it can."""
		return ""

	def missing_settings(self, settings: Mapping) -> list[str]:
		"""The labels of connector settings this scheme needs and does not have."""
		return []


class StandardWebhooks(Scheme):
	signs_delivery_id = True  # webhook-id and webhook-timestamp are signed with the body

	def verify(self, secret, headers, body, settings, now=None, request=None):
		return signing.verify(secret or [], headers, body, now=now)

	def secret_problem(self, secret):
		try:
			signing.decode_secret(secret)
		except ValueError as e:
			return str(e)
		return ""


class HmacHeader(Scheme):
	"""A base64 HMAC-SHA256 of the body in a header the connector names (Shopify, WooCommerce)."""

	def verify(self, secret, headers, body, settings, now=None, request=None):
		if not secret:
			raise WebhookVerificationError("no signing secret is configured")
		signature = headers.get((settings.get("signature_header") or "").lower())
		signing.verify_hmac_header(secret, signature, body)
		return headers.get((settings.get("id_header") or "").lower()) or body_id(body)

	def missing_settings(self, settings):
		return [] if settings.get("signature_header") else ["Signature Header"]


class Stripe(Scheme):
	"""``Stripe-Signature: t=…,v1=…``; the delivery id is the event's ``id`` (evt_…), which is
	inside the signed body, and the timestamp must be within 5 minutes."""

	signs_delivery_id = True

	def verify(self, secret, headers, body, settings, now=None, request=None):
		signing.verify_stripe(secret, headers.get("stripe-signature"), body, now=now)
		return signed_event_id(body)

	def secret_problem(self, secret):
		if not (secret or "").startswith(signing.SECRET_PREFIX):
			return "a Stripe endpoint secret starts with 'whsec_' (Developers > Webhooks > Signing secret)"
		return ""


class Razorpay(Scheme):
	"""``X-Razorpay-Signature`` (hex HMAC-SHA256 of the body); the delivery id is the
	``x-razorpay-event-id`` header, which the signature does not cover."""

	def verify(self, secret, headers, body, settings, now=None, request=None):
		if not secret:
			raise WebhookVerificationError("no signing secret is configured")
		signing.verify_razorpay(secret, headers.get("x-razorpay-signature"), body)
		return headers.get("x-razorpay-event-id") or body_id(body)


class EasyPost(Scheme):
	"""``X-Hmac-Signature: hmac-sha256-hex=<hex>`` (the body keyed with the NFKD-normalized webhook
	secret); the delivery id is the Event's ``id`` (evt_…), inside the signed body. EasyPost signs
	no time: a replayed body carries the same id and is taken once."""

	signs_delivery_id = True

	def verify(self, secret, headers, body, settings, now=None, request=None):
		header = (settings.get("signature_header") or signing.EASYPOST_HEADER).lower()
		signing.verify_easypost(secret, headers.get(header), body)
		return signed_event_id(body)


class HubSpot(Scheme):
	"""``X-HubSpot-Signature-v3`` over method + URL + body + ``X-HubSpot-Request-Timestamp`` (ms,
	within 5 minutes), keyed with the app's client secret. HubSpot sends no delivery id: the id is
	made of the event ids inside the signed body, so the same events sent again are taken once."""

	signs_delivery_id = True

	def verify(self, secret, headers, body, settings, now=None, request=None):
		request = request or RequestLine()
		signing.verify_hubspot(
			secret,
			headers.get(signing.HUBSPOT_HEADER.lower()),
			headers.get(signing.HUBSPOT_TIMESTAMP_HEADER.lower()),
			request.method,
			request.urls,
			body,
			now=now,
		)
		return hubspot_delivery_id(body)


def hubspot_delivery_id(body: bytes) -> str:
	"""``hubspot:`` + a hash of the sorted event ids of a HubSpot webhook body (a JSON array)."""
	try:
		events = json.loads(body)
		ids = sorted(str(e["eventId"]) for e in events)
	except (ValueError, TypeError, KeyError):
		raise WebhookVerificationError("the body is not a list of HubSpot events with eventId")
	if not ids:
		raise WebhookVerificationError("the body has no events")
	return "hubspot:" + hashlib.sha256(",".join(ids).encode()).hexdigest()[:40]


SCHEMES: dict[str, Scheme] = {
	"Standard Webhooks": StandardWebhooks(),
	"HMAC-SHA256 Header": HmacHeader(),
	"Stripe": Stripe(),
	"Razorpay": Razorpay(),
	"EasyPost HMAC": EasyPost(),
	"HubSpot v3": HubSpot(),
}


def scheme(name: str | None) -> Scheme:
	"""The scheme of a connector's Signature Scheme (KeyError for one nobody registered)."""
	return SCHEMES[name or "Standard Webhooks"]
