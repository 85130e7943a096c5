"""The seam between the flows and the kinds of external system. Delivery hands a transport a
batch of outbox events and gets an outcome for each; the connector asks it to check that the
system answers. One module per kind implements it; transports/__init__.py picks the module.

Transports run in the drain's sender threads: they get everything they need in plain values
(no frappe), and must be safe to call from several threads at once.
"""

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import requests

from erp_connect.engine import http
from erp_connect.engine.retry import Verdict, classify_exception, classify_response

RESPONSE_EXCERPT = 1000


@dataclass(frozen=True)
class Endpoint:
	"""Where a connector's system is and how to talk to it (secrets already decrypted)."""

	base_url: str
	timeout: float = http.DEFAULT_TIMEOUT_SECONDS
	allow_private: bool = False
	auth_headers: Mapping[str, str] = field(default_factory=dict)
	signing_secret: str | None = None

	def url_for(self, path: str | None) -> str:
		return join_url(self.base_url, path)


def join_url(base_url: str, path: str | None) -> str:
	"""The absolute URL of a target path below ``base_url`` (a full URL is taken as it is)."""
	if path and path.startswith(("http://", "https://")):
		return path
	return base_url + "/" + path.lstrip("/") if path else base_url


@dataclass(frozen=True)
class Route:
	"""Where one push rule's events go."""

	target: str  # a path below the base URL, a full URL, or a subject/topic for brokers
	method: str = "POST"
	batch_size: int = 1
	table: object = None  # kinds that mirror tables (``mirrors_tables``): the rule's doctype's layout


@dataclass(frozen=True)
class OutboundEvent:
	name: str
	event_id: str
	payload: str  # the envelope rendered at save time (engine/outbound.py)
	# kinds that name documents by the remote's own ids (``needs_remote_ids``): (doctype, name) ->
	# that document's id at the remote, read from the Sync Links when the event is sent
	remote_ids: Mapping[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
	"""The outcome of one request (or message) for the events it carried."""

	names: list[str]
	verdict: Verdict
	status_code: int | None = None
	response: str | None = None
	# what the answer says about the events' document, to write onto it once the events are recorded
	# as delivered (fieldname -> value; services/push/write_back.py): a carrier's tracking number
	write_back: Mapping[str, object] | None = None
	# the id the remote gave the event's document (a CRM's new company): kept as its Sync Link
	external_id: str | None = None


class Transport:
	"""The default kind: HTTP, one request per event or per batch. Subclasses change what they
	must; ``calls_out`` False marks systems that only call us (POS terminals)."""

	calls_out = True
	one_document_per_request = False  # the remote's API takes one document at a time
	adopts_same_names = False  # a pull finds the local document of the same name (shared names)
	reads_stream = False  # pull rules read messages (fetch_messages + ack) instead of pages
	mirrors_tables = False  # routes carry the layout of their doctype (Route.table): SQL replicas
	receives = "records"  # what its received webhooks carry: records to upsert, or "payments"
	# the callers are people signed in to an app (OAuth bearer tokens of its client), each with
	# their own permissions, instead of one API user: mobile apps
	callers_are_people = False
	requests_per_send = 1  # the most requests one send makes one after another (leases are sized to them)
	# the remote names documents by ids of its own: delivery hands each event the ids of the
	# documents ``documents_named`` lists (OutboundEvent.remote_ids)
	needs_remote_ids = False

	def __init__(self, endpoint: Endpoint):
		self.endpoint = endpoint
		self._local = threading.local()

	schemes = http.HTTP_SCHEMES  # what a base URL of this kind starts with

	@classmethod
	def url_problem(cls, url: str) -> str:
		"""A readable problem with a base URL for this kind, or '' when it is usable."""
		return http.validate_url(url, cls.schemes)

	def message_preview(self, target: str | None, event: OutboundEvent) -> dict | None:
		"""What a broker kind publishes for ``event`` (method, where, headers); None for HTTP kinds,
		whose preview is the request itself."""
		return None

	def close(self) -> None:
		"""Let go of connections (the drain calls it when its run ends); HTTP keeps none open."""

	def batch_size(self, requested: int) -> int:
		return 1 if self.one_document_per_request else max(requested or 1, 1)

	def send(self, route: Route, events: Sequence[OutboundEvent]) -> list[SendResult]:
		raise NotImplementedError

	def ping(self) -> http.Response:
		"""One request that shows whether the system answers (Test Connection)."""
		from erp_connect.engine import outbound

		endpoint = self.endpoint
		msg_id = outbound.new_event_id()
		headers = outbound.request_headers(msg_id, b"", endpoint.signing_secret, endpoint.auth_headers)
		return self.request("GET", endpoint.base_url, None, headers)

	def probe(self) -> None:
		"""Raise when the system cannot be reached (the health check: no auth, no side effect)."""
		self.request("HEAD", self.endpoint.base_url, None, {})

	@classmethod
	def pull_defaults(cls, doctype: str) -> dict:
		"""Pull Rule settings this kind fixes (another Frappe site's REST list); {} for none."""
		return {}

	@staticmethod
	def list_query(field_rules) -> dict:
		"""Query parameters a pull rule's list is read with, from its field map; {} for none."""
		return {}

	@staticmethod
	def records_read(records: list[dict]) -> list[dict]:
		"""Records of a pulled page as field maps read them (the kind's own shape: as they came)."""
		return records

	@staticmethod
	def documents_named(payload: Mapping) -> list[tuple[str, str]]:
		"""(doctype, name) of the documents whose remote ids sending an event needs."""
		return []

	# -- HTTP helpers for the kinds that speak it ----------------------------------------------
	def request(self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]) -> http.Response:
		return http.send(
			method,
			url,
			body=body,
			headers=headers,
			timeout=self.endpoint.timeout,
			allow_private=self.endpoint.allow_private,
			session=self._session(),
		)

	def _session(self) -> requests.Session:
		if not hasattr(self._local, "session"):
			self._local.session = requests.Session()
		return self._local.session


def result_of_response(names: list[str], response: http.Response) -> SendResult:
	excerpt = response.body[:RESPONSE_EXCERPT].decode("utf-8", "replace")
	return SendResult(names, classify_response(response.status, response.headers), response.status, excerpt)


def result_of_exception(names: list[str], error: BaseException) -> SendResult:
	return SendResult(names, classify_exception(error))


NO_RESPONSE = (requests.RequestException, http.BlockedTargetError, OSError)
