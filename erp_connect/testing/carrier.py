"""A fake EasyPost for tests: a real HTTP server on 127.0.0.1 with the parts of EasyPost's API that
erp_connect uses, and a sender of signed tracker webhooks. Frappe-free, so both test tiers use it.

- Basic auth with the API key as the username (401 otherwise);
- ``POST /v2/shipments``: checks the addresses and the parcel (422 with EasyPost's error shape when
  something is missing), answers 201 with the shipment and its rates;
- ``GET /v2/shipments/<id or reference>``: the shipment, or 404;
- ``POST /v2/shipments/<id>/buy``: a tracking code, a postage label URL and a tracker;
- faults scripted per operation (``create``, ``buy``, ``get``): an answer (500, 422, ...) instead
  of doing anything, or a ``lost`` answer: the work is done, then the answer is held back past the
  client's timeout;
- ``send_tracker_update``: a ``tracker.updated`` Event posted to a URL, signed with
  ``X-Hmac-Signature`` as EasyPost signs it.

	with FakeCarrier(api_key="EZTK_test") as carrier:
		carrier.fail("create", 500)
		... deliver to carrier.url ...
		carrier.shipments  # what was created
"""

import base64
import json
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass

import requests

from erp_connect.engine import signing
from erp_connect.testing.fake_http import NOT_JSON, FakePlatformServer, Request

RATES = (("USPS", "Priority", "7.58"), ("UPS", "Ground", "9.10"), ("USPS", "Express", "31.25"))
REQUIRED_ADDRESS = ("street1", "city", "zip", "country")


@dataclass
class Fault:
	status: int = 500
	body: dict | None = None
	delay: float = 0.0  # a slow answer (the work is not done when status is not 2xx)
	lost: bool = False  # do the work, then answer only after ``delay`` (past the client's timeout)


def error_body(code: str, message: str, errors: list[dict] | None = None) -> dict:
	return {"error": {"code": code, "message": message, "errors": errors or []}}


class FakeCarrier(FakePlatformServer):
	def __init__(self, api_key: str = "EZTK_test_key", **server):
		super().__init__(**server)
		self.api_key = api_key
		self.shipments: dict[str, dict] = {}  # by id, in creation order
		self.requests: list[tuple[str, str, int]] = []  # (method, path, status answered)
		self.bodies: list[dict] = []  # the bodies of POST /v2/shipments
		self.bought = 0  # labels bought
		self.faults: dict[str, deque[Fault]] = defaultdict(deque)

	def reset(self) -> None:
		with self.lock:
			self.shipments.clear()
			self.requests.clear()
			self.bodies.clear()
			self.faults.clear()
			self.bought = 0

	def fail(self, operation: str, status: int = 500, body: dict | None = None, **options) -> None:
		"""The next ``operation`` (create, buy, get) answers ``status`` instead of working."""
		self.faults[operation].append(Fault(status, body, **options))

	def lose_answer(self, operation: str, delay: float) -> None:
		"""The next ``operation`` works, and its answer comes only after ``delay`` seconds."""
		self.faults[operation].append(Fault(200, None, delay, lost=True))

	def count(self, method: str, path_part: str) -> int:
		with self.lock:
			return sum(1 for m, p, _ in self.requests if m == method and path_part in p)

	def by_reference(self, reference: str) -> dict | None:
		with self.lock:
			return next((s for s in self.shipments.values() if s.get("reference") == reference), None)

	# -- tracker webhooks -----------------------------------------------------------------------
	@staticmethod
	def tracker_event(
		tracking_code: str,
		status: str,
		at: str,
		message: str = "",
		event_id: str | None = None,
		city: str = "Memphis",
	) -> dict:
		"""A ``tracker.updated`` Event as EasyPost posts it (``at``: ISO 8601 UTC, ``...Z``)."""
		detail = {
			"object": "TrackingDetail",
			"message": message or status.replace("_", " ").title(),
			"status": status,
			"status_detail": f"{status}_detail",
			"datetime": at,
			"source": "USPS",
			"tracking_location": {"object": "TrackingLocation", "city": city, "state": "TN", "country": "US"},
		}
		return {
			"id": event_id or "evt_" + secrets.token_hex(16),
			"object": "Event",
			"mode": "test",
			"description": "tracker.updated",
			"previous_attributes": {},
			"created_at": at,
			"updated_at": at,
			"result": {
				"id": "trk_" + secrets.token_hex(16),
				"object": "Tracker",
				"mode": "test",
				"tracking_code": tracking_code,
				"status": status,
				"status_detail": f"{status}_detail",
				"carrier": "USPS",
				"updated_at": at,
				"tracking_details": [detail],
			},
		}

	@staticmethod
	def send_tracker_update(
		url: str, secret: str, event: dict, signature: str | None = None, headers: dict | None = None
	) -> requests.Response:
		"""POST one Event to ``url`` with EasyPost's signature (or the one given)."""
		body = json.dumps(event).encode()
		headers = {
			"Content-Type": "application/json",
			signing.EASYPOST_HEADER: signature or signing.easypost_signature(secret, body),
			**(headers or {}),
		}
		return requests.post(url, data=body, headers=headers, timeout=30)

	# -- the API ----------------------------------------------------------------------------------
	def _shipment(self, body: dict) -> tuple[int, dict]:
		shipment = body.get("shipment") if isinstance(body, dict) else None
		if not isinstance(shipment, dict):
			return 422, error_body(
				"PARAMETER.REQUIRED", "Missing required parameter.", [{"field": "shipment"}]
			)
		errors = []
		for which in ("to_address", "from_address"):
			addr = shipment.get(which) or {}
			for f in REQUIRED_ADDRESS:
				if not addr.get(f):
					errors.append({"field": f"{which}.{f}", "message": "cannot be blank"})
		weight = (shipment.get("parcel") or {}).get("weight")
		if not isinstance(weight, int | float) or weight <= 0:
			errors.append({"field": "parcel.weight", "message": "must be greater than 0"})
		if errors:
			return 422, error_body(
				"SHIPMENT.INVALID_PARAMS",
				"Unable to create shipment, one or more parameters were invalid.",
				errors,
			)
		shipment_id = "shp_" + secrets.token_hex(16)
		created = {
			"id": shipment_id,
			"object": "Shipment",
			"mode": "test",
			"reference": shipment.get("reference"),
			"to_address": shipment["to_address"],
			"from_address": shipment["from_address"],
			"parcel": {"object": "Parcel", **shipment["parcel"]},
			"rates": [
				{
					"id": "rate_" + secrets.token_hex(16),
					"object": "Rate",
					"carrier": c,
					"service": s,
					"rate": r,
				}
				for c, s, r in RATES
			],
			"selected_rate": None,
			"postage_label": None,
			"tracking_code": None,
			"tracker": None,
			"status": "unknown",
		}
		with self.lock:
			self.shipments[shipment_id] = created
			self.bodies.append(body)
		return 201, created

	def _find(self, key: str) -> dict | None:
		with self.lock:
			return self.shipments.get(key) or next(
				(s for s in self.shipments.values() if s.get("reference") == key), None
			)

	def _buy(self, shipment_id: str, body: dict) -> tuple[int, dict]:
		shipment = self._find(shipment_id)
		if shipment is None:
			return 404, error_body("NOT_FOUND", "The requested resource could not be found.")
		if shipment.get("postage_label"):
			return 422, error_body("SHIPMENT.POSTAGE.EXISTS", "Shipment already has postage.")
		rate_id = ((body or {}).get("rate") or {}).get("id")
		rate = next((r for r in shipment["rates"] if r["id"] == rate_id), None)
		if rate is None:
			return 422, error_body("SHIPMENT.RATE.INVALID", "Rate not found.", [{"field": "rate.id"}])
		code = "9400" + "".join(secrets.choice("0123456789") for _ in range(18))
		with self.lock:
			shipment.update(
				selected_rate=rate,
				tracking_code=code,
				postage_label={"object": "PostageLabel", "label_url": f"{self.url}/labels/{shipment_id}.png"},
				tracker={
					"id": "trk_" + secrets.token_hex(16),
					"object": "Tracker",
					"tracking_code": code,
					"status": "pre_transit",
				},
				status="unknown",
			)
			self.bought += 1
		return 200, shipment

	def answer(self, request: Request) -> tuple[int, object, dict]:
		status, body = self._answer(request)
		with self.lock:
			self.requests.append((request.method, request.path, status))
		return status, body, {}

	def _answer(self, request: Request) -> tuple[int, dict]:
		method, parts = request.method, [p for p in request.path.split("/") if p]
		if not self._authorised(request.headers):
			return 401, error_body("APIKEY.REQUIRED", "Wrong or missing API key.")
		if parts[:2] != ["v2", "shipments"]:
			return 404, error_body("NOT_FOUND", "No such endpoint.")
		if method == "POST" and len(parts) == 2:
			operation = "create"
		elif method == "POST" and len(parts) == 4 and parts[3] == "buy":
			operation = "buy"
		elif method == "GET" and len(parts) == 3:
			operation = "get"
		elif method == "GET" and len(parts) == 2:
			return 200, {"shipments": [], "has_more": False}
		else:
			return 404, error_body("NOT_FOUND", "No such endpoint.")
		with self.lock:
			fault = self.faults[operation].popleft() if self.faults[operation] else None
		if fault and not fault.lost:
			time.sleep(fault.delay)
			return fault.status, fault.body or error_body("INTERNAL_SERVER_ERROR", "Something went wrong.")
		body = request.body if request.body is not None else {}
		if body is NOT_JSON:
			return 400, error_body("BAD_REQUEST", "The body is not JSON.")
		if operation == "create":
			status, answer = self._shipment(body)
		elif operation == "buy":
			status, answer = self._buy(parts[2], body)
		else:
			found = self._find(parts[2])
			status, answer = (
				(200, found)
				if found
				else (404, error_body("NOT_FOUND", "The requested resource could not be found."))
			)
		if fault:  # lost: the work is done, the answer comes too late
			time.sleep(fault.delay)
		return status, answer

	def _authorised(self, headers) -> bool:
		value = headers.get("Authorization", "")
		if not value.startswith("Basic "):
			return False
		try:
			username = base64.b64decode(value[6:]).decode().split(":", 1)[0]
		except ValueError:
			return False
		return username == self.api_key
