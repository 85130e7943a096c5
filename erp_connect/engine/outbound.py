"""What an outbound event looks like on the wire: ids, the envelope, batch bodies and headers.

Delivery and the Desk preview both build requests here, so the preview is exactly what is sent.
"""

import hashlib
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from erp_connect.engine import signing
from erp_connect.engine.encoding import dumps


def new_event_id(now: float | None = None) -> str:
	"""``evt_`` + 12 hex digits of milliseconds + 16 random hex digits: sortable by time, unguessable."""
	millis = int((time.time() if now is None else now) * 1000)
	return f"evt_{millis:012x}{secrets.token_hex(8)}"


@dataclass(frozen=True)
class EventRef:
	"""What identifies one event of one document, around its data."""

	event_id: str
	doctype: str
	name: str
	doc_event: str  # after_insert, on_update, ...
	seq: int  # the document's events for one connector, counted from 1
	timestamp: str  # ISO 8601, when the document was saved

	@property
	def type(self) -> str:
		return f"{self.doctype}.{self.doc_event}"


def envelope(ref: EventRef, data) -> str:
	"""The JSON body of one event: Standard Webhooks' type/timestamp/data plus our document reference."""
	return dumps(
		{
			"id": ref.event_id,
			"type": ref.type,
			"timestamp": ref.timestamp,
			"doctype": ref.doctype,
			"name": ref.name,
			"seq": ref.seq,
			"data": data,
		}
	)


def batch_id(event_ids: Sequence[str]) -> str:
	"""A stable id for a batch: the same events always make the same id."""
	return "batch_" + hashlib.sha256("|".join(event_ids).encode()).hexdigest()[:32]


def batch_body(payloads: Sequence[str]) -> str:
	"""Several stored event bodies in one request, without parsing them again."""
	return '{"type":"batch","events":[' + ",".join(payloads) + "]}"


def request_headers(
	msg_id: str,
	body: str | bytes,
	signing_secret: str | None,
	auth_headers: Mapping[str, str] | None = None,
	timestamp: int | None = None,
) -> dict[str, str]:
	"""Every header of one delivery: content type, auth, Idempotency-Key and the Standard Webhooks trio."""
	return {
		"Content-Type": "application/json",
		**(auth_headers or {}),
		"Idempotency-Key": msg_id,
		**signing.signature_headers(signing_secret, msg_id, body, timestamp),
	}
