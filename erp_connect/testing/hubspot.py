"""A fake HubSpot for tests: a real HTTP server on 127.0.0.1 with the parts of HubSpot's CRM API that
erp_connect uses, and a sender of webhooks signed as HubSpot signs them. Frappe-free, so both test
tiers use it.

- private-app auth: ``Authorization: Bearer <token>`` (401 with HubSpot's error shape otherwise);
- ``GET /crm/v3/objects/<type>?limit=&after=&properties=&associations=``: a page of objects in id
  order, ``paging.next.after`` while more follow (limit at most 100, as HubSpot's);
- ``GET /crm/v3/objects/<type>/<id>?properties=&associations=``: one object, or 404;
- ``POST /crm/v3/objects/<type>`` (``{"properties", "associations"}``): 201; a contact whose email
  exists already is 409 "Contact already exists. Existing ID: <id>", as HubSpot answers; an
  unknown property is 400 VALIDATION_ERROR;
- ``PATCH /crm/v3/objects/<type>/<id>``: 200, or 404;
- ``PUT /crm/v4/objects/<type>/<id>/associations/default/<type>/<id>``: the default association;
- faults scripted per operation (``list``, ``read``, ``create``, ``update``, ``associate``): an
  answer (400, 429 with Retry-After, 500, ...) instead of doing anything;
- ``send_webhook``: events posted to a URL with ``X-HubSpot-Signature-v3`` and
  ``X-HubSpot-Request-Timestamp`` (ms), signed over method + the URL + body + timestamp.

	with FakeHubSpot(token="pat-test") as hub:
		company = hub.add("companies", {"name": "Acme"})
		hub.send_webhook(receive_url, [hub.event("company.creation", company)], secret)
"""

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import requests

from erp_connect.engine import signing
from erp_connect.testing.fake_http import NOT_JSON, FakePlatformServer, Request

MAX_LIMIT = 100
# the properties each type knows (HubSpot's defaults and a few more); others are a 400
KNOWN_PROPERTIES = {
	"companies": {"name", "domain", "phone", "city", "industry"},
	"contacts": {"firstname", "lastname", "email", "phone", "company", "jobtitle"},
	"deals": {"dealname", "amount", "dealstage", "pipeline", "closedate"},
}
DEFAULT_PROPERTIES = {
	"companies": ("name", "domain"),
	"contacts": ("firstname", "lastname", "email"),
	"deals": ("dealname", "amount", "dealstage", "pipeline", "closedate"),
}
ASSOCIATION_NAMES = {
	("contacts", "companies"): "contact_to_company",
	("companies", "contacts"): "company_to_contact",
	("deals", "companies"): "deal_to_company",
	("companies", "deals"): "company_to_deal",
	("deals", "contacts"): "deal_to_contact",
	("contacts", "deals"): "contact_to_deal",
}
APP_ID, PORTAL_ID = 1234567, 62515


@dataclass
class Fault:
	status: int = 500
	body: dict | None = None
	retry_after: int | None = None


def error_body(category: str, message: str, errors: list[dict] | None = None) -> dict:
	return {
		"status": "error",
		"message": message,
		"correlationId": "b2c3a1f4-0000-4000-8000-000000000000",
		"category": category,
		**({"errors": errors} if errors else {}),
	}


def now_iso() -> str:
	return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class FakeHubSpot(FakePlatformServer):
	def __init__(self, token: str = "pat-na1-test", **server):
		super().__init__(**server)
		self.token = token
		self.objects: dict[str, dict[str, dict]] = defaultdict(dict)  # type -> id -> object
		self.associations: set[tuple[str, str, str, str]] = set()  # (from type, id, to type, id)
		self.requests: list[tuple[str, str, int]] = []  # (method, path, status answered)
		self.bodies: list[tuple[str, str, dict]] = []  # (method, path, body) of writes
		self.faults: dict[str, deque[Fault]] = defaultdict(deque)
		self.next_id = 1001
		self.next_event_id = 1

	def reset(self) -> None:
		with self.lock:
			self.objects.clear()
			self.associations.clear()
			self.requests.clear()
			self.bodies.clear()
			self.faults.clear()

	def fail(
		self, operation: str, status: int = 500, body: dict | None = None, retry_after: int | None = None
	):
		"""The next ``operation`` (list, read, create, update, associate) answers ``status``."""
		self.faults[operation].append(Fault(status, body, retry_after))

	def count(self, method: str, path_part: str = "") -> int:
		with self.lock:
			return sum(1 for m, p, _ in self.requests if m == method and path_part in p)

	# -- the CRM's own data (what a person does in HubSpot) ---------------------------------------
	def add(self, object_type: str, properties: dict, companies: list[str] = ()) -> str:
		"""A new object, as if made in HubSpot; returns its id."""
		with self.lock:
			object_id = self._create(object_type, properties)
			for company in companies:
				self._associate(object_type, object_id, "companies", company)
		return object_id

	def change(self, object_type: str, object_id: str, **properties) -> None:
		with self.lock:
			obj = self.objects[object_type][object_id]
			obj["properties"].update({k: str(v) for k, v in properties.items()})
			obj["updatedAt"] = now_iso()

	def get(self, object_type: str, object_id: str) -> dict:
		with self.lock:
			return json.loads(json.dumps(self.objects[object_type][object_id]))

	def find(self, object_type: str, **properties) -> list[dict]:
		with self.lock:
			return [
				json.loads(json.dumps(o))
				for o in self.objects[object_type].values()
				if all(o["properties"].get(k) == str(v) for k, v in properties.items())
			]

	def associated(self, object_type: str, object_id: str, to_type: str) -> list[str]:
		with self.lock:
			return sorted(
				t for f, i, tt, t in self.associations if (f, i, tt) == (object_type, object_id, to_type)
			)

	# -- webhooks ------------------------------------------------------------------------------------
	def event(self, subscription_type: str, object_id: str, event_id: int | None = None, **extra) -> dict:
		"""One webhook event as HubSpot sends it (``contact.creation``, ``deal.propertyChange``, ...)."""
		with self.lock:
			if event_id is None:
				event_id, self.next_event_id = self.next_event_id, self.next_event_id + 1
		return {
			"eventId": event_id,
			"subscriptionId": 4711,
			"portalId": PORTAL_ID,
			"appId": APP_ID,
			"occurredAt": int(time.time() * 1000),
			"subscriptionType": subscription_type,
			"attemptNumber": 0,
			"objectId": int(object_id),
			"changeSource": "CRM",
			**extra,
		}

	@staticmethod
	def signed_headers(secret: str, url: str, body: bytes, timestamp_ms: int | None = None) -> dict:
		timestamp_ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
		return {
			"Content-Type": "application/json",
			"X-HubSpot-Signature-v3": signing.hubspot_signature(secret, "POST", url, body, timestamp_ms),
			"X-HubSpot-Request-Timestamp": str(timestamp_ms),
		}

	def send_webhook(
		self,
		url: str,
		events: list[dict],
		secret: str,
		timestamp_ms: int | None = None,
		body: bytes | None = None,
		signed_url: str | None = None,
		headers: dict | None = None,
	) -> requests.Response:
		"""POST ``events`` to ``url`` as HubSpot does (``body`` instead: signed as given). HubSpot
		signs the URL it calls; ``signed_url`` is that URL when the request reaches the site another
		way (a test posting to the site's server on 127.0.0.1 with the site's Host header)."""
		body = json.dumps(events, separators=(",", ":")).encode() if body is None else body
		signed = self.signed_headers(secret, signed_url or url, body, timestamp_ms)
		return requests.post(url, data=body, headers={**signed, **(headers or {})}, timeout=30)

	# -- the API ---------------------------------------------------------------------------------------
	def _create(self, object_type: str, properties: dict) -> str:
		object_id = str(self.next_id)
		self.next_id += 1
		stamp = now_iso()
		self.objects[object_type][object_id] = {
			"id": object_id,
			"properties": {
				**{k: (None if v is None else str(v)) for k, v in properties.items()},
				"hs_object_id": object_id,
			},
			"createdAt": stamp,
			"updatedAt": stamp,
			"archived": False,
		}
		return object_id

	def _associate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
		self.associations.add((from_type, from_id, to_type, to_id))
		self.associations.add((to_type, to_id, from_type, from_id))

	def _view(self, object_type: str, obj: dict, query: dict) -> dict:
		wanted = query.get("properties", [""])[0]
		names = [p for p in wanted.split(",") if p] or list(DEFAULT_PROPERTIES.get(object_type, ()))
		view = {**obj, "properties": {k: obj["properties"].get(k) for k in [*names, "hs_object_id"]}}
		for to_type in [t for t in query.get("associations", [""])[0].split(",") if t]:
			ids = sorted(
				t for f, i, tt, t in self.associations if (f, i, tt) == (object_type, obj["id"], to_type)
			)
			if ids:
				kind = ASSOCIATION_NAMES.get((object_type, to_type), "association")
				# HubSpot lists a primary and an unlabeled association of the same pair
				results = [{"id": i, "type": kind} for i in ids] + [
					{"id": i, "type": f"{kind}_unlabeled"} for i in ids
				]
				view.setdefault("associations", {})[to_type] = {"results": results}
		return view

	def _unknown_properties(self, object_type: str, properties) -> dict | None:
		if not isinstance(properties, dict):
			return error_body("VALIDATION_ERROR", "properties must be an object")
		unknown = sorted(set(properties) - KNOWN_PROPERTIES.get(object_type, set()))
		if unknown:
			errors = [
				{
					"isValid": False,
					"message": f'Property "{p}" does not exist',
					"error": "PROPERTY_DOESNT_EXIST",
					"name": p,
				}
				for p in unknown
			]
			return error_body(
				"VALIDATION_ERROR", f"Property values were not valid: {json.dumps(errors)}", errors
			)
		return None

	def handle(self, method: str, path: str, query: dict, body: dict | None) -> tuple[int, dict, dict]:
		"""(status, body, headers) of one authorised request; the caller holds the lock."""
		parts = [p for p in path.split("/") if p]
		# /crm/v4/objects/<type>/<id>/associations/default/<type>/<id>
		if parts[:3] == ["crm", "v4", "objects"] and method == "PUT" and len(parts) == 9:
			return self._fault_or("associate", lambda: self._put_association(parts))
		if parts[:3] != ["crm", "v3", "objects"] or len(parts) not in (4, 5):
			return 404, error_body("OBJECT_NOT_FOUND", f"unknown path {path}"), {}
		object_type = parts[3]
		if object_type not in KNOWN_PROPERTIES:
			return 400, error_body("VALIDATION_ERROR", f"Unable to infer object type from: {object_type}"), {}
		store = self.objects[object_type]
		if len(parts) == 4 and method == "GET":
			return self._fault_or("list", lambda: (200, self._page(object_type, query), {}))
		if len(parts) == 4 and method == "POST":
			return self._fault_or("create", lambda: self._post(object_type, body or {}))
		object_id = parts[4]
		if object_id not in store:
			missing = error_body("OBJECT_NOT_FOUND", f"resource not found: {object_type} {object_id}")
			return self._fault_or("read" if method == "GET" else "update", lambda: (404, missing, {}))
		if method == "GET":
			return self._fault_or("read", lambda: (200, self._view(object_type, store[object_id], query), {}))
		if method == "PATCH":
			return self._fault_or("update", lambda: self._patch(object_type, object_id, body or {}))
		return 405, error_body("VALIDATION_ERROR", "method not allowed"), {}

	def _fault_or(self, operation: str, work) -> tuple[int, dict, dict]:
		if self.faults[operation]:
			fault = self.faults[operation].popleft()
			headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
			body = fault.body or error_body(
				"RATE_LIMITS" if fault.status == 429 else "INTERNAL_ERROR", f"scripted HTTP {fault.status}"
			)
			return fault.status, body, headers
		return work()

	def _page(self, object_type: str, query: dict) -> dict:
		limit = min(int(query.get("limit", ["10"])[0]), MAX_LIMIT)
		after = int(query.get("after", ["0"])[0] or 0)
		ordered = sorted(
			(o for o in self.objects[object_type].values() if int(o["id"]) >= after),
			key=lambda o: int(o["id"]),
		)
		page, rest = ordered[:limit], ordered[limit:]
		out = {"results": [self._view(object_type, o, query) for o in page]}
		if rest:
			out["paging"] = {"next": {"after": rest[0]["id"], "link": f"?after={rest[0]['id']}"}}
		return out

	def _post(self, object_type: str, body: dict) -> tuple[int, dict, dict]:
		properties = body.get("properties")
		problem = self._unknown_properties(object_type, properties)
		if problem:
			return 400, problem, {}
		email = (properties.get("email") or "").lower()
		if object_type == "contacts" and email:
			for o in self.objects["contacts"].values():
				if (o["properties"].get("email") or "").lower() == email:
					message = f"Contact already exists. Existing ID: {o['id']}"
					return 409, error_body("CONFLICT", message), {}
		object_id = self._create(object_type, properties)
		for a in body.get("associations") or []:
			to_id = str(a["to"]["id"])
			to_type = next((t for t in self.objects if to_id in self.objects[t] and t != object_type), None)
			if to_type is None:
				del self.objects[object_type][object_id]
				return 400, error_body("VALIDATION_ERROR", f"association target {to_id} does not exist"), {}
			self._associate(object_type, object_id, to_type, to_id)
		return 201, self._view(object_type, self.objects[object_type][object_id], {}), {}

	def _patch(self, object_type: str, object_id: str, body: dict) -> tuple[int, dict, dict]:
		properties = body.get("properties")
		problem = self._unknown_properties(object_type, properties)
		if problem:
			return 400, problem, {}
		obj = self.objects[object_type][object_id]
		obj["properties"].update({k: (None if v is None else str(v)) for k, v in properties.items()})
		obj["updatedAt"] = now_iso()
		return 200, self._view(object_type, obj, {}), {}

	def _put_association(self, parts: list[str]) -> tuple[int, dict, dict]:
		from_type, from_id, to_type, to_id = parts[3], parts[4], parts[7], parts[8]
		if from_id not in self.objects[from_type] or to_id not in self.objects[to_type]:
			return 404, error_body("OBJECT_NOT_FOUND", "one of the objects does not exist"), {}
		self._associate(from_type, from_id, to_type, to_id)
		return 200, {"status": "COMPLETE", "results": [{"from": {"id": from_id}, "to": {"id": to_id}}]}, {}

	def answer(self, request: Request) -> tuple[int, object, dict]:
		path = request.path
		with self.lock:
			if request.headers.get("Authorization") != f"Bearer {self.token}":
				status, body, headers = (
					401,
					error_body(
						"INVALID_AUTHENTICATION",
						"Authentication credentials not found. This API supports OAuth 2.0 authentication",
					),
					{},
				)
			else:
				parsed = None if request.body is NOT_JSON else request.body
				if request.method in ("POST", "PATCH"):
					self.bodies.append((request.method, path, parsed))
				query = parse_qs(urlsplit(request.target).query)
				status, body, headers = self.handle(request.method, path, query, parsed)
			self.requests.append((request.method, path, status))
		return status, body, headers
