"""Fake webshops for tests: real HTTP servers on 127.0.0.1 with the parts of Shopify's Admin REST
API and of WooCommerce's REST API that erp_connect pushes to, answering as their docs describe.
Frappe-free, so both test tiers use them.

FakeShopify (``/admin/api/<version>/...``, ``X-Shopify-Access-Token``, 401 otherwise):
- ``GET shop.json``, ``GET products/<id>.json``, ``GET locations.json``, ``GET orders/<id>.json``;
- ``POST inventory_levels/set.json``: sets ``available`` of an inventory item at a location (422
  when the item or location is unknown or ``available`` is not an integer);
- ``PUT variants/<id>.json``: ``{"variant": {"id", "price"}}`` (422 for a price that is no number);
- ``POST orders/<id>/cancel.json`` and ``close.json`` (cancelling a cancelled order: 422).

FakeWooCommerce (``/wp-json/wc/v3/...``, Basic auth with the consumer key and secret, 401 otherwise):
- ``PUT products/<id>``: ``stock_quantity`` (an integer) and ``regular_price`` (a string, 400
  ``rest_invalid_param`` otherwise); ``PUT orders/<id>``: ``status``.

Both: ``throttle(n, retry_after)`` answers the next n requests 429 with Retry-After (Shopify's
leaky bucket sends "2.0"); ``requests`` lists (method, path, status, body) of every request.

	with FakeShopify(token="shpat_test") as shop:
		item = shop.add_product(price="10.00")  # {"product_id", "variant_id", "inventory_item_id"}
		... deliver to shop.url ...
		shop.level(item["inventory_item_id"], shop.location_id)
"""

import base64
import itertools
import json
import re
from dataclasses import dataclass

from erp_connect.testing.fake_http import NOT_JSON, FakePlatformServer, Request

_ids = itertools.count(1001)


@dataclass
class Received:
	method: str
	path: str
	status: int
	body: dict | None


class FakeShop(FakePlatformServer):
	"""The log of what it received, and throttling on demand."""

	def __init__(self, **server):
		super().__init__(**server)
		self.requests: list[Received] = []
		self.throttled = 0
		self.retry_after = "2.0"

	def reset(self) -> None:
		"""Forget what was received and any throttling (the shop's records stay)."""
		with self.lock:
			self.requests.clear()
			self.throttled = 0

	def throttle(self, times: int = 1, retry_after: str = "2.0") -> None:
		"""The next ``times`` requests are answered 429 Too Many Requests."""
		with self.lock:
			self.throttled, self.retry_after = times, retry_after

	def received(self, method: str | None = None, path_part: str = "") -> list[Received]:
		with self.lock:
			return [
				r for r in self.requests if (method is None or r.method == method) and path_part in r.path
			]

	# -- what a platform fills in --------------------------------------------------------------
	def authorised(self, headers) -> bool:
		raise NotImplementedError

	def unauthorised(self) -> dict:
		raise NotImplementedError

	def throttled_body(self) -> dict:
		return {"errors": "Too many requests"}

	def route(self, method: str, path: str, body) -> tuple[int, dict]:
		raise NotImplementedError

	def answer(self, request: Request) -> tuple[int, object, dict]:
		body = request.raw.decode("utf-8", "replace") if request.body is NOT_JSON else request.body
		headers = {}
		with self.lock:
			throttled = self.throttled > 0
			self.throttled -= throttled
		if not self.authorised(request.headers):
			status, answer = 401, self.unauthorised()
		elif throttled:
			status, answer = 429, self.throttled_body()
			headers["Retry-After"] = self.retry_after
		elif isinstance(body, str):
			status, answer = 400, {"errors": "the body is not JSON"}
		else:
			with self.lock:
				status, answer = self.route(request.method, request.path, body)
		with self.lock:
			self.requests.append(Received(request.method, request.path, status, body))
		return status, answer, headers


class FakeShopify(FakeShop):
	API = re.compile(r"^/admin/api/\d{4}-\d{2}/(?P<rest>.+)\.json$")

	def __init__(self, token: str = "shpat_test_token", locations: int = 1, **server):
		super().__init__(**server)
		self.token = token
		self.locations = [{"id": next(_ids), "name": f"Shop {n}", "active": True} for n in range(locations)]
		self.products: dict[int, dict] = {}
		self.levels: dict[tuple[int, int], int] = {}  # (inventory item, location) -> available
		self.orders: dict[int, dict] = {}

	@property
	def location_id(self) -> int:
		return self.locations[0]["id"]

	def add_product(self, price: str = "10.00", variants: int = 1) -> dict:
		product_id = next(_ids)
		rows = [
			{
				"id": next(_ids),
				"product_id": product_id,
				"price": price,
				"inventory_item_id": next(_ids),
				"inventory_management": "shopify",
			}
			for _ in range(variants)
		]
		with self.lock:
			self.products[product_id] = {"id": product_id, "title": f"Product {product_id}", "variants": rows}
		return {
			"product_id": product_id,
			"variant_id": rows[0]["id"],
			"inventory_item_id": rows[0]["inventory_item_id"],
		}

	def add_order(self) -> int:
		order_id = next(_ids)
		with self.lock:
			self.orders[order_id] = {"id": order_id, "cancelled_at": None, "closed_at": None}
		return order_id

	def level(self, inventory_item_id: int, location_id: int) -> int | None:
		with self.lock:
			return self.levels.get((inventory_item_id, location_id))

	def price(self, variant_id: int) -> str | None:
		with self.lock:
			return next(
				(v["price"] for p in self.products.values() for v in p["variants"] if v["id"] == variant_id),
				None,
			)

	def authorised(self, headers) -> bool:
		return headers.get("X-Shopify-Access-Token") == self.token

	def unauthorised(self) -> dict:
		return {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}

	def throttled_body(self) -> dict:
		return {
			"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
		}

	def route(self, method: str, path: str, body) -> tuple[int, dict]:
		match = self.API.match(path)
		parts = match["rest"].split("/") if match else []
		body = body or {}
		if method == "GET" and len(parts) == 2 and parts[0] == "products":
			product = self.products.get(_int(parts[1]))
			return (200, {"product": product}) if product else NOT_FOUND
		if method == "GET" and parts == ["shop"]:
			return 200, {
				"shop": {"id": 548380009, "name": "Fake Shop", "myshopify_domain": "fake.myshopify.com"}
			}
		if method == "GET" and parts == ["locations"]:
			return 200, {"locations": self.locations}
		if method == "GET" and len(parts) == 2 and parts[0] == "orders":
			order = self.orders.get(_int(parts[1]))
			return (200, {"order": order}) if order else NOT_FOUND
		if method == "POST" and parts == ["inventory_levels", "set"]:
			return self._set_level(body)
		if method == "PUT" and len(parts) == 2 and parts[0] == "variants":
			return self._update_variant(_int(parts[1]), body.get("variant") or {})
		if method == "POST" and len(parts) == 3 and parts[0] == "orders" and parts[2] in ("cancel", "close"):
			return self._order_action(_int(parts[1]), parts[2])
		return NOT_FOUND

	def _set_level(self, body: dict) -> tuple[int, dict]:
		item, location, available = (body.get(k) for k in ("inventory_item_id", "location_id", "available"))
		items = {v["inventory_item_id"] for p in self.products.values() for v in p["variants"]}
		if not isinstance(available, int) or isinstance(available, bool):
			return 422, {"errors": {"available": ["must be an integer"]}}
		if _int(item) not in items:
			return 422, {"errors": ["Inventory item does not exist"]}
		if _int(location) not in {loc["id"] for loc in self.locations}:
			return 422, {"errors": ["Location does not exist"]}
		self.levels[(_int(item), _int(location))] = available
		level = {"inventory_item_id": _int(item), "location_id": _int(location), "available": available}
		return 200, {"inventory_level": level}

	def _update_variant(self, variant_id: int | None, fields: dict) -> tuple[int, dict]:
		variant = next(
			(v for p in self.products.values() for v in p["variants"] if v["id"] == variant_id), None
		)
		if variant is None:
			return NOT_FOUND
		if "price" in fields:
			try:
				float(fields["price"])
			except (TypeError, ValueError):
				return 422, {"errors": {"price": ["must be a number"]}}
			variant["price"] = str(fields["price"])
		return 200, {"variant": variant}

	def _order_action(self, order_id: int | None, action: str) -> tuple[int, dict]:
		order = self.orders.get(order_id)
		if order is None:
			return NOT_FOUND
		if action == "cancel":
			if order["cancelled_at"]:
				return 422, {"error": "Cannot cancel an order that has already been cancelled"}
			order["cancelled_at"] = "2026-12-01T10:00:00-05:00"
		else:
			order["closed_at"] = order["closed_at"] or "2026-12-01T10:00:00-05:00"
		return 200, {"order": order}


class FakeWooCommerce(FakeShop):
	PREFIX = "/wp-json/wc/v3/"

	def __init__(self, key: str = "ck_test", secret: str = "cs_test", **server):
		super().__init__(**server)
		self.key, self.secret = key, secret
		self.products: dict[int, dict] = {}
		self.orders: dict[int, dict] = {}

	def add_product(self, regular_price: str = "10.00", stock_quantity: int = 0) -> int:
		product_id = next(_ids)
		with self.lock:
			self.products[product_id] = {
				"id": product_id,
				"regular_price": regular_price,
				"manage_stock": True,
				"stock_quantity": stock_quantity,
			}
		return product_id

	def add_order(self, status: str = "processing") -> int:
		order_id = next(_ids)
		with self.lock:
			self.orders[order_id] = {"id": order_id, "status": status}
		return order_id

	def product(self, product_id: int) -> dict:
		with self.lock:
			return dict(self.products[product_id])

	def authorised(self, headers) -> bool:
		value = headers.get("Authorization", "")
		expected = base64.b64encode(f"{self.key}:{self.secret}".encode()).decode()
		return value == f"Basic {expected}"

	def unauthorised(self) -> dict:
		return {
			"code": "woocommerce_rest_cannot_edit",
			"message": "Sorry, you are not allowed to edit this resource.",
			"data": {"status": 401},
		}

	def throttled_body(self) -> dict:
		return {"code": "too_many_requests", "message": "Too many requests", "data": {"status": 429}}

	def route(self, method: str, path: str, body) -> tuple[int, dict]:
		parts = path[len(self.PREFIX) :].split("/") if path.startswith(self.PREFIX) else []
		if method != "PUT" or len(parts) != 2 or parts[0] not in ("products", "orders"):
			return 404, {"code": "rest_no_route", "message": "No route was found.", "data": {"status": 404}}
		records = self.products if parts[0] == "products" else self.orders
		record = records.get(_int(parts[1]))
		if record is None:
			return 404, {
				"code": f"woocommerce_rest_{parts[0][:-1]}_invalid_id",
				"message": "Invalid ID.",
				"data": {"status": 404},
			}
		body = body or {}
		problems = {}
		if "regular_price" in body and not isinstance(body["regular_price"], str):
			problems["regular_price"] = "regular_price is not of type string."
		if "stock_quantity" in body and not isinstance(body["stock_quantity"], int):
			problems["stock_quantity"] = "stock_quantity is not of type integer."
		if problems:
			return 400, {
				"code": "rest_invalid_param",
				"message": f"Invalid parameter(s): {', '.join(problems)}",
				"data": {"status": 400, "params": problems},
			}
		record.update(body)
		return 200, record


NOT_FOUND = (404, {"errors": "Not Found"})


def _int(value) -> int | None:
	try:
		return int(value)
	except (TypeError, ValueError):
		return None
