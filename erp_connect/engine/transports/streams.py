"""What the event-stream kinds (NATS JetStream, RabbitMQ, MQTT) share: their broker URLs, the
subject / routing key / topic of an event, and the headers every message carries.

Each event is one message. Its body is the event's JSON envelope exactly as a webhook receiver
gets it (id, type, timestamp, doctype, name, seq, data); the headers repeat the id, type and seq
and carry the Standard Webhooks id, timestamp and signature (when the connector has a signing
secret), signed over the exact body.
"""

import functools
import json
import re
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from erp_connect.engine import http, signing
from erp_connect.engine.mapping import read_path
from erp_connect.engine.retry import Outcome, Verdict
from erp_connect.engine.transports import base


class BadTarget(ValueError):
	"""A rule's subject / topic template cannot name this event (permanent)."""


@dataclass(frozen=True)
class Broker:
	scheme: str
	host: str
	port: int | None
	username: str | None
	password: str | None
	path: str


def broker_of(url: str, schemes: tuple[str, ...], allow_private: bool) -> Broker:
	"""The parts of a broker URL, after the SSRF guard: a private or loopback broker only when the
	connector allows private network targets (http.BlockedTargetError otherwise)."""
	problem = http.validate_url(url, schemes)
	if problem:
		raise http.BlockedTargetError(problem)
	parts = urlsplit(url)
	http.check_host(parts.hostname, allow_private)
	return Broker(
		parts.scheme,
		parts.hostname,
		parts.port,
		unquote(parts.username) if parts.username else None,
		unquote(parts.password) if parts.password else None,
		parts.path,
	)


@dataclass(frozen=True)
class Message:
	"""One event as a broker message."""

	target: str  # the subject, routing key or topic
	body: bytes
	headers: dict[str, str]
	event_id: str
	type: str
	seq: int


def message_of(event: base.OutboundEvent, template: str, token, secret: str | None) -> Message:
	"""The message of one event: ``template`` ({doctype}, {event}, {name}) filled in with each
	value made safe by ``token`` for the broker's naming rules."""
	try:
		envelope = json.loads(event.payload)
	except ValueError as e:
		raise BadTarget(f"the event's payload is not JSON: {e}")
	doctype = str(envelope.get("doctype") or "")
	event_type = str(envelope.get("type") or "")
	doc_event = event_type.rsplit(".", 1)[-1] if "." in event_type else event_type
	values = {
		"doctype": token(doctype.lower().replace(" ", "_")),
		"event": token(doc_event),
		"name": token(str(envelope.get("name") or "")),
	}
	try:
		target = template.format_map(values)
	except (KeyError, IndexError, ValueError) as e:
		raise BadTarget(
			f"the target template {template!r} is not valid ({type(e).__name__}: {e}); "
			"it may use {doctype}, {event} and {name}"
		)
	body = event.payload.encode()
	seq = int(envelope.get("seq") or 0)
	headers = {
		"Content-Type": "application/json",
		"erp-event-type": event_type,
		"erp-event-seq": str(seq),
		**signing.signature_headers(secret, event.event_id, body),
	}
	return Message(target, body, headers, event.event_id, event_type, seq)


_NATS_RESERVED = re.compile(r"[\s.*>]")
_AMQP_RESERVED = re.compile(r"[\s.*#]")
_MQTT_RESERVED = re.compile(r"[\s/+#\x00]")


@functools.lru_cache(maxsize=4096)  # doctypes and events repeat: a subject costs no regex after the first
def nats_token(value: str) -> str:
	"""A NATS subject token: no white space, dots or wildcards."""
	return _NATS_RESERVED.sub("_", value) or "_"


@functools.lru_cache(maxsize=4096)
def amqp_token(value: str) -> str:
	"""A word of an AMQP topic routing key: no dots or wildcards."""
	return _AMQP_RESERVED.sub("_", value) or "_"


@functools.lru_cache(maxsize=4096)
def mqtt_token(value: str) -> str:
	"""An MQTT topic level: no slashes, wildcards or NUL."""
	return _MQTT_RESERVED.sub("_", value) or "_"


def delivered(names: list[str], reason: str) -> base.SendResult:
	return base.SendResult(names, Verdict(Outcome.DELIVERED, reason), None, reason)


def retry(names: list[str], reason: str) -> base.SendResult:
	return base.SendResult(names, Verdict(Outcome.RETRY, reason), None, reason)


def dead(names: list[str], reason: str) -> base.SendResult:
	return base.SendResult(names, Verdict(Outcome.DEAD, reason), None, reason)


class Deadline:
	"""One send's whole time budget (connecting included): the connector's timeout."""

	def __init__(self, seconds: float):
		self.seconds = seconds
		self.ends = time.monotonic() + seconds

	def left(self, at_least: float = 0.05) -> float:
		return max(self.ends - time.monotonic(), at_least)


@dataclass(frozen=True)
class StreamMessage:
	"""One message a pull rule read from a stream, not acknowledged yet."""

	data: bytes
	subject: str
	message_id: str | None
	handle: object  # the client's own message, to acknowledge it


def records_of_message(data: bytes, records_path: str) -> list[dict]:
	"""The records one message carries: its JSON body (an object, or a list of objects), or what
	is at ``records_path`` in it (``data`` for erp_connect's own envelopes). ValueError when the
	message can never become records."""
	try:
		body = json.loads(data)
	except ValueError as e:
		raise ValueError(f"the message is not JSON: {e}")
	found = read_path(body, records_path) if records_path else body
	records = [found] if isinstance(found, dict) else found
	if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
		where = records_path or "the message"
		raise ValueError(f"expected an object or a list of objects at {where}, got {type(found).__name__}")
	return records


def answered(elapsed: float, what: str) -> http.Response:
	"""What Test Connection shows for a broker that answered."""
	return http.Response(200, {}, what.encode(), elapsed)
