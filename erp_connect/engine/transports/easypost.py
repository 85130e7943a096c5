"""An EasyPost-style carrier platform: an outbox event of a Delivery Note becomes one bought
shipment (a label and a tracking number), and its tracker's webhooks move the note's shipping
status (services/shipping/tracking.py).

One event is one shipment, whatever happens to the requests:

1. ``GET /v2/shipments/<reference>``: the event id is the shipment's ``reference`` (EasyPost finds
   a shipment by its reference wherever it takes an id, and documents no Idempotency-Key), so a
   retry after a lost answer finds the shipment it created before instead of creating another;
2. only when there is none, ``POST /v2/shipments`` (to_address, from_address, one parcel whose
   weight in ounces is the total of the items' weights);
3. when it has no label yet, ``POST /v2/shipments/<id>/buy`` with the cheapest rate (of the
   carrier and service the rule's payload asks for, if any).

The answer's shipment id, tracking number, label URL and carrier are handed back as the
SendResult's ``write_back``: delivery writes them onto the Delivery Note's custom fields.

The payload (the rule's field map, engine/presets.py) carries ``to_address`` and ``from_address``
with EasyPost's address fields, and ``items[]`` with ``qty``, ``weight_per_unit`` and
``weight_uom``; optional ``carrier`` and ``service``.
"""

import base64
import binascii
import dataclasses
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from urllib.parse import quote

from erp_connect.engine.encoding import dumps
from erp_connect.engine.retry import Outcome, Verdict
from erp_connect.engine.transports import base

SHIPMENTS_PATH = "/v2/shipments"

# the Delivery Note fields the answer is written onto (created by erp_connect/install.py)
SHIPMENT_ID = "ec_shipment_id"
TRACKING_NUMBER = "ec_tracking_number"
LABEL_URL = "ec_label_url"
CARRIER = "ec_carrier"

# a Tracker's status -> the Delivery Note's shipping status
STATUSES = {
	"pre_transit": "Pre-Transit",
	"in_transit": "In Transit",
	"out_for_delivery": "Out for Delivery",
	"delivered": "Delivered",
	"return_to_sender": "Returned",
	"failure": "Failed",
	"unknown": "Unknown",
}

OUNCES = {  # ounces in one unit of each weight UOM ERPNext ships with (lower case)
	"oz": Decimal(1),
	"ounce": Decimal(1),
	"lb": Decimal(16),
	"pound": Decimal(16),
	"kg": Decimal("35.27396195"),
	"kilogram": Decimal("35.27396195"),
	"g": Decimal("0.03527396195"),
	"gram": Decimal("0.03527396195"),
	"gm": Decimal("0.03527396195"),
	"mg": Decimal("0.00003527396195"),
	"milligram": Decimal("0.00003527396195"),
	"tonne": Decimal("35273.96195"),
}
ADDRESS_FIELDS = (
	"name",
	"company",
	"street1",
	"street2",
	"city",
	"state",
	"zip",
	"country",
	"phone",
	"email",
)
REQUIRED_ADDRESS_FIELDS = ("street1", "city", "zip", "country")


class ShipmentProblem(ValueError):
	"""The document cannot become a shipment (a person must fix it): every problem at once."""

	def __init__(self, problems: list[str]):
		self.problems = problems
		super().__init__("; ".join(problems))


# -- building the request ----------------------------------------------------------------------
def ounces(weight, uom: str | None) -> Decimal:
	factor = OUNCES.get((uom or "").strip().lower())
	if factor is None:
		raise ValueError(f"unknown weight unit {uom!r} (use kg, g, lb or oz)")
	return Decimal(str(weight)) * factor


def parcel_ounces(items: Sequence[Mapping]) -> float:
	"""The parcel's weight in ounces (one decimal): qty x weight per unit of every item row."""
	problems, total = [], Decimal(0)
	for i, row in enumerate(items or [], 1):
		label = row.get("item_code") or f"row {i}"
		weight = row.get("weight_per_unit")
		if not weight:
			problems.append(f"item {label} has no weight (set Weight Per Unit and Weight UOM on the Item)")
			continue
		try:
			total += ounces(weight, row.get("weight_uom")) * Decimal(str(row.get("qty") or 0))
		except ValueError as e:
			problems.append(f"item {label}: {e}")
	if not items:
		problems.append("the document has no items")
	if problems:
		raise ShipmentProblem(problems)
	if total <= 0:
		raise ShipmentProblem(["the parcel weighs nothing"])
	return float(round(total, 1))


def address(data: Mapping | None, which: str) -> tuple[dict, list[str]]:
	data = data or {}
	out = {f: str(data[f]).strip() for f in ADDRESS_FIELDS if data.get(f) not in (None, "")}
	if out.get("country"):
		out["country"] = out["country"].upper()
	missing = [f for f in REQUIRED_ADDRESS_FIELDS if not out.get(f)]
	problems = [f"{which} has no {', '.join(missing)}"] if missing else []
	return out, problems


def shipment_request(data: Mapping, reference: str) -> dict:
	"""The ``POST /v2/shipments`` body for one event's payload; ShipmentProblem lists what is missing."""
	to_address, problems = address(data.get("to_address"), "to_address (the customer's shipping address)")
	from_address, more = address(data.get("from_address"), "from_address (the company's address)")
	problems += more
	try:
		weight = parcel_ounces(data.get("items") or [])
	except ShipmentProblem as e:
		problems += e.problems
	if problems:
		raise ShipmentProblem(problems)
	return {
		"shipment": {
			"reference": reference,
			"to_address": to_address,
			"from_address": from_address,
			"parcel": {"weight": weight},
		}
	}


def choose_rate(shipment: Mapping, carrier: str | None = None, service: str | None = None) -> dict | None:
	"""The cheapest rate, of the carrier and service asked for when given."""
	rates = [
		r
		for r in shipment.get("rates") or []
		if (not carrier or str(r.get("carrier", "")).lower() == carrier.lower())
		and (not service or str(r.get("service", "")).lower() == service.lower())
	]
	return min(rates, key=lambda r: Decimal(str(r.get("rate") or "Infinity")), default=None)


def write_back_of(shipment: Mapping) -> dict:
	"""What a bought shipment writes onto its Delivery Note."""
	label = shipment.get("postage_label") or {}
	rate = shipment.get("selected_rate") or {}
	tracker = shipment.get("tracker") or {}
	return {
		SHIPMENT_ID: shipment.get("id"),
		TRACKING_NUMBER: shipment.get("tracking_code") or tracker.get("tracking_code"),
		LABEL_URL: label.get("label_url"),
		CARRIER: " ".join(str(v) for v in (rate.get("carrier"), rate.get("service")) if v) or None,
	}


def error_message(body: bytes) -> str:
	"""EasyPost's error answer ``{"error": {"code", "message", "errors": [{"field", "message"}]}}``
	as one line; the raw text when it is something else."""
	try:
		error = json.loads(body)["error"]
		details = "; ".join(
			f"{e.get('field')}: {e.get('message')}" if isinstance(e, dict) else str(e)
			for e in error.get("errors") or []
		)
		return " ".join(
			p for p in (f"{error.get('code')}:", error.get("message"), details and f"({details})") if p
		)
	except (ValueError, KeyError, TypeError, AttributeError):
		return body[:300].decode("utf-8", "replace")


def basic_key_only(headers: Mapping[str, str]) -> dict[str, str]:
	"""EasyPost takes the API key as the Basic username and no password: a Basic header is sent
	with the username alone, whatever password the connector holds."""
	headers = dict(headers)
	value = headers.get("Authorization", "")
	if value.startswith("Basic "):
		try:
			username = base64.b64decode(value[6:]).decode().split(":", 1)[0]
		except (binascii.Error, UnicodeDecodeError):
			return headers
		headers["Authorization"] = "Basic " + base64.b64encode(f"{username}:".encode()).decode()
	return headers


# -- the transport -------------------------------------------------------------------------------
class EasyPostTransport(base.Transport):
	one_document_per_request = True  # one Delivery Note is one shipment
	requests_per_send = 3  # look up by reference, create, buy: the drain's lease covers all three

	def send(self, route: base.Route, events: Sequence[base.OutboundEvent]) -> list[base.SendResult]:
		(event,) = events
		names = [event.name]
		data = json.loads(event.payload).get("data") or {}
		try:
			request = shipment_request(data, event.event_id)
		except ShipmentProblem as e:
			return [base.SendResult(names, Verdict(Outcome.DEAD, f"cannot ship: {e}"))]
		collection = self.endpoint.url_for(route.target or SHIPMENTS_PATH)
		headers = {
			"Content-Type": "application/json",
			"Accept": "application/json",
			**basic_key_only(self.endpoint.auth_headers),
			"Idempotency-Key": event.event_id,
		}
		try:
			found = self.request("GET", f"{collection}/{quote(event.event_id)}", None, headers)
			if found.status == 404:
				found = self.request("POST", collection, dumps(request).encode(), headers)
			if not 200 <= found.status < 300:
				return [failure(names, found)]
			shipment = json.loads(found.body)
			if not (shipment.get("postage_label") or {}).get("label_url"):
				rate = choose_rate(shipment, data.get("carrier"), data.get("service"))
				if rate is None:
					reason = "the carrier offers no rate for this shipment"
					if data.get("carrier") or data.get("service"):
						reason += f" with carrier {data.get('carrier')!r} and service {data.get('service')!r}"
					return [base.SendResult(names, Verdict(Outcome.DEAD, reason), found.status)]
				body = dumps({"rate": {"id": rate["id"]}}).encode()
				bought = self.request("POST", f"{collection}/{quote(shipment['id'])}/buy", body, headers)
				if not 200 <= bought.status < 300:
					return [failure(names, bought)]
				shipment = json.loads(bought.body)
		except base.NO_RESPONSE as e:
			return [base.result_of_exception(names, e)]
		except (ValueError, KeyError, TypeError) as e:  # a 2xx that is not a shipment
			return [
				base.SendResult(names, Verdict(Outcome.RETRY, f"unreadable answer from the carrier: {e}"))
			]
		values = write_back_of(shipment)
		summary = dumps({k: v for k, v in values.items() if v})
		return [
			base.SendResult(
				names,
				Verdict(Outcome.DELIVERED, "shipment bought"),
				200,
				summary[: base.RESPONSE_EXCERPT],
				write_back=values,
			)
		]

	def ping(self):
		"""One authenticated read of the shipments list (a wrong API key answers 401)."""
		headers = {"Accept": "application/json", **basic_key_only(self.endpoint.auth_headers)}
		return self.request("GET", self.endpoint.url_for(SHIPMENTS_PATH) + "?page_size=1", None, headers)


def failure(names: list[str], response) -> base.SendResult:
	"""A non-2xx answer, classified as any other (5xx/429 retried, 422 dead), with the carrier's
	own message in the reason."""
	result = base.result_of_response(names, response)
	verdict = dataclasses.replace(
		result.verdict, reason=f"{result.verdict.reason}: {error_message(response.body)}"
	)
	return dataclasses.replace(result, verdict=verdict)
