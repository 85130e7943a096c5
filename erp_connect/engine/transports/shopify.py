"""Shopify's Admin REST API (``/admin/api/<version>``). Pulls read its lists as any REST API's are
read (transports.base); pushes speak the endpoints a shop's stock, prices and orders need, the one
the rule's Target Path names:

- ``.../inventory_levels/set.json``: POST ``{"location_id", "inventory_item_id", "available"}``,
  the item's level at one Shopify location;
- ``.../variants/{id}.json``: PUT ``{"variant": {"id": ..., "price": "12.50"}}``;
- ``.../orders/{id}/{action}.json``: POST, ``action`` from the map: ``cancel`` or ``close`` (an
  empty action: nothing to tell the shop). Cancelling an order Shopify already cancelled counts as
  done, so a retry after a lost answer is harmless.

Any other Target Path sends the event as a REST API receives it (RestApiTransport).

Ids: the map names the product by ``product_id`` (the item's External ID Link: the product its
pull linked it with), and this reads the product's variant for the variant and inventory item ids,
once a drain; a product with several variants needs ``variant_id`` / ``inventory_item_id`` mapped
from fields of the Item instead. The location: ``location_id`` from the map (a Constant row), or,
when the map gives none, the shop's only active location.

Auth: ``X-Shopify-Access-Token`` (Auth Type API Key Header). A 429 is retried after its
Retry-After; a 422 is dead-lettered with Shopify's errors; a refused token says so.
"""

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import replace
from urllib.parse import quote

from erp_connect.engine import outbound
from erp_connect.engine.encoding import dumps
from erp_connect.engine.retry import Outcome, Verdict
from erp_connect.engine.transports import base
from erp_connect.engine.transports.streams import dead
from erp_connect.engine.transports.webhook import RestApiTransport

API_VERSION = "2024-10"
API = f"/admin/api/{API_VERSION}"
INVENTORY_SET_PATH = f"{API}/inventory_levels/set.json"
VARIANT_PATH = f"{API}/variants/{{id}}.json"
ORDER_ACTION_PATH = f"{API}/orders/{{id}}/{{action}}.json"
ORDER_ACTIONS = ("cancel", "close", "open")
ACCESS_TOKEN_HEADER = "X-Shopify-Access-Token"

OPERATION = re.compile(
	r"^(?P<api>.*)/(?:(?P<inventory>inventory_levels/set)|(?P<variant>variants/\{id\})"
	r"|(?P<order>orders/\{id\}/\{action\}))\.json$"
)


class Refused(Exception):
	"""The event cannot become a request (a person must fix the map or the data)."""


class Answered(Exception):
	"""A look-up the request needs was answered with a failure: that is the event's outcome."""

	def __init__(self, result: base.SendResult):
		self.result = result


class ShopifyTransport(RestApiTransport):
	one_document_per_request = True
	requests_per_send = 3  # the shop's location and the product's variant are read first

	def __init__(self, endpoint: base.Endpoint):
		super().__init__(endpoint)
		self._variants: dict[tuple[str, str], dict] = {}  # (api, product id) -> its variant, a drain long
		self._locations: dict[str, str] = {}  # api -> the shop's only location
		self._lookups = threading.Lock()

	def send(self, route: base.Route, events: Sequence[base.OutboundEvent]) -> list[base.SendResult]:
		match = OPERATION.match(route.target or "")
		if not match:
			return super().send(route, events)
		(event,) = events
		data = dict(json.loads(event.payload).get("data") or {})
		api = match["api"]
		try:
			if match["inventory"]:
				return [self.set_inventory(event, api, data)]
			if match["variant"]:
				return [self.update_variant(event, api, data)]
			return [self.order_action(event, api, data)]
		except Refused as e:
			return [dead([event.name], str(e))]
		except Answered as e:
			return [replace(e.result, names=[event.name])]
		except base.NO_RESPONSE as e:
			return [base.result_of_exception([event.name], e)]

	def ping(self):
		"""Test Connection: read the shop with the token, so a wrong token shows as a 401 at once."""
		return self.call("GET", f"{API}/shop.json", None, outbound.new_event_id())

	# -- the operations ---------------------------------------------------------------------------
	def set_inventory(self, event: base.OutboundEvent, api: str, data: dict) -> base.SendResult:
		available = data.get("available")
		if isinstance(available, float) and available.is_integer():
			available = int(available)
		if not isinstance(available, int) or isinstance(available, bool):
			raise Refused(f"available must be a whole number, not {available!r}: round it in the map")
		body = {
			"location_id": data.get("location_id") or self.only_location(api),
			"inventory_item_id": data.get("inventory_item_id")
			or self.variant(api, data)["inventory_item_id"],
			"available": available,
		}
		response = self.call("POST", f"{api}/inventory_levels/set.json", body, event.event_id)
		return outcome(event.name, response, "inventory item or location")

	def update_variant(self, event: base.OutboundEvent, api: str, data: dict) -> base.SendResult:
		variant_id = data.pop("variant_id", None) or self.variant(api, data)["id"]
		data.pop("product_id", None)
		body = {"variant": {**data, "id": variant_id}}
		response = self.call(
			"PUT", f"{api}/variants/{quote(str(variant_id), safe='')}.json", body, event.event_id
		)
		return outcome(event.name, response, "variant")

	def order_action(self, event: base.OutboundEvent, api: str, data: dict) -> base.SendResult:
		order, action = data.pop("id", None), data.pop("action", None)
		if not action:
			return base.SendResult([event.name], Verdict(Outcome.DELIVERED, "nothing to tell the shop"))
		if action not in ORDER_ACTIONS:
			raise Refused(f"action {action!r} is not one of {', '.join(ORDER_ACTIONS)}")
		if order in (None, ""):
			raise Refused("no Shopify order id: map the order's name to id with External ID Link")
		path = f"{api}/orders/{quote(str(order), safe='')}"
		response = self.call("POST", f"{path}/{action}.json", data, event.event_id)
		if response.status == 422 and action == "cancel" and self.already_cancelled(path):
			return base.SendResult([event.name], Verdict(Outcome.DELIVERED, "already cancelled"), 200)
		return outcome(event.name, response, "order")

	# -- what the operations look up ---------------------------------------------------------------
	def variant(self, api: str, data: dict) -> dict:
		"""The product's only variant (its id and inventory item id), read once a drain."""
		product = data.get("product_id")
		if product in (None, ""):
			raise Refused("no Shopify product id: map the item to product_id with External ID Link")
		key = (api, str(product))
		if key not in self._variants:
			found = self.read(
				f"{api}/products/{quote(str(product), safe='')}.json?fields=id,variants", "product"
			)
			variants = (found.get("product") or {}).get("variants") or []
			if len(variants) != 1:
				raise Refused(
					f"product {product} has {len(variants)} variants: map variant_id and "
					"inventory_item_id from fields of the Item"
				)
			with self._lookups:
				self._variants[key] = variants[0]
		return self._variants[key]

	def only_location(self, api: str) -> str:
		"""The shop's location when it has one active location, read once a drain."""
		if api not in self._locations:
			found = self.read(f"{api}/locations.json", "locations")
			active = [loc["id"] for loc in found.get("locations") or [] if loc.get("active", True)]
			if len(active) != 1:
				raise Refused(
					f"the shop has {len(active)} active locations: add a row location_id (Constant: "
					"the location's id) to the rule's field map, one rule per location"
				)
			with self._lookups:
				self._locations[api] = active[0]
		return self._locations[api]

	def already_cancelled(self, order_path: str) -> bool:
		try:
			found = self.read(f"{order_path}.json?fields=id,cancelled_at", "order")
		except (Answered, *base.NO_RESPONSE):
			return False
		return bool((found.get("order") or {}).get("cancelled_at"))

	def read(self, path: str, what: str) -> dict:
		response = self.call("GET", path, None, outbound.new_event_id())
		result = outcome("", response, what)
		if result.verdict.outcome is not Outcome.DELIVERED:
			raise Answered(result)
		try:
			return json.loads(response.body)
		except ValueError:
			raise Answered(
				base.SendResult([], Verdict(Outcome.RETRY, f"Shopify's {what} answer is not JSON"))
			)

	def call(self, method: str, path: str, body: dict | None, event_id: str):
		raw = dumps(body).encode() if body is not None else b""
		endpoint = self.endpoint
		headers = outbound.request_headers(event_id, raw, endpoint.signing_secret, endpoint.auth_headers)
		return self.request(method, endpoint.url_for(path), raw if body is not None else None, headers)


def outcome(name: str, response, what: str) -> base.SendResult:
	"""What Shopify's answer means, in words a person can act on for the refusals."""
	result = base.result_of_response([name], response)
	status = response.status
	if status in (401, 403):
		reason = (
			f"HTTP {status}: Shopify refused the access token: check the connector's API Key "
			f"({ACCESS_TOKEN_HEADER}) and the app's access scopes"
		)
	elif status == 404:
		reason = f"HTTP 404: Shopify has no such {what}"
	elif status == 422:
		reason = f"HTTP 422: Shopify refused it: {errors_of(response.body)}"
	else:
		return result
	return replace(result, verdict=Verdict(Outcome.DEAD, reason))


def errors_of(body: bytes) -> str:
	"""Shopify's ``errors`` (a text, a list or field -> messages) as one line."""
	try:
		errors = json.loads(body).get("errors") or json.loads(body).get("error")
	except (ValueError, AttributeError):
		return body[:200].decode("utf-8", "replace")
	if isinstance(errors, dict):
		return "; ".join(
			f"{k} {', '.join(map(str, v if isinstance(v, list) else [v]))}" for k, v in errors.items()
		)
	if isinstance(errors, list):
		return "; ".join(map(str, errors))
	return str(errors)
