"""The Shopify transport against a fake Shopify Admin API on 127.0.0.1: stock levels set at the
right location and inventory item, prices on the product's variant, orders cancelled or closed,
throttling retried after Retry-After, refusals dead-lettered with Shopify's words."""

import pytest

from erp_connect.engine import outbound, transports
from erp_connect.engine.retry import Outcome
from erp_connect.engine.transports import Endpoint, OutboundEvent, Route
from erp_connect.engine.transports.shopify import (
	API_VERSION,
	INVENTORY_SET_PATH,
	ORDER_ACTION_PATH,
	VARIANT_PATH,
)
from erp_connect.testing.remote import RemoteSystem
from erp_connect.testing.webshop import FakeShopify

TOKEN = "shpat_0123456789abcdef"


@pytest.fixture
def shop():
	with FakeShopify(token=TOKEN) as server:
		yield server


def shopify(shop, token: str = TOKEN):
	headers = {"X-Shopify-Access-Token": token}
	return transports.kind("Shopify")(Endpoint(shop.url, timeout=2, allow_private=True, auth_headers=headers))


def event(data: dict, doctype: str = "Item", doc_event: str = "on_stock_change") -> OutboundEvent:
	event_id = outbound.new_event_id()
	ref = outbound.EventRef(event_id, doctype, "SKU-1", doc_event, 1, "2026-12-01T10:00:00")
	return OutboundEvent("row-1", event_id, outbound.envelope(ref, data))


def send(transport, target: str, data: dict):
	(result,) = transport.send(Route(target), [event(data)])
	return result


def test_a_stock_level_is_set_at_the_shops_location_for_the_products_inventory_item(shop):
	product = shop.add_product()
	transport = shopify(shop)
	for level in (7, 9):
		result = send(
			transport, INVENTORY_SET_PATH, {"product_id": product["product_id"], "available": level}
		)
		assert result.verdict.outcome is Outcome.DELIVERED, result
	assert shop.level(product["inventory_item_id"], shop.location_id) == 9
	sets = shop.received("POST", "inventory_levels/set")
	assert [r.body for r in sets][-1] == {
		"location_id": shop.location_id,
		"inventory_item_id": product["inventory_item_id"],
		"available": 9,
	}
	# the location and the variant were read once for the drain's transport, not once per send
	assert (len(shop.received("GET", "locations")), len(shop.received("GET", "products"))) == (1, 1)


def test_a_mapped_location_and_inventory_item_are_used_as_they_are(shop):
	other = FakeShopify(token=TOKEN, locations=2)
	with other:
		product = other.add_product()
		second = other.locations[1]["id"]
		data = {"inventory_item_id": product["inventory_item_id"], "location_id": second, "available": 3.0}
		assert send(shopify(other), INVENTORY_SET_PATH, data).verdict.outcome is Outcome.DELIVERED
		assert other.level(product["inventory_item_id"], second) == 3
		assert other.received("GET") == []  # nothing to look up
		# several locations and none mapped: a person must pick one
		result = send(
			shopify(other), INVENTORY_SET_PATH, {"product_id": product["product_id"], "available": 1}
		)
		assert result.verdict.outcome is Outcome.DEAD and "2 active locations" in result.verdict.reason


def test_a_product_with_several_variants_or_without_an_id_is_dead_with_what_to_map(shop):
	product = shop.add_product(variants=3)
	result = send(shopify(shop), INVENTORY_SET_PATH, {"product_id": product["product_id"], "available": 1})
	assert result.verdict.outcome is Outcome.DEAD and "3 variants" in result.verdict.reason
	result = send(shopify(shop), INVENTORY_SET_PATH, {"available": 1})
	assert result.verdict.outcome is Outcome.DEAD and "product_id" in result.verdict.reason
	result = send(shopify(shop), INVENTORY_SET_PATH, {"product_id": product["product_id"], "available": 1.5})
	assert result.verdict.outcome is Outcome.DEAD and "whole number" in result.verdict.reason
	assert shop.received("POST") == []


def test_a_price_goes_to_the_products_variant(shop):
	product = shop.add_product(price="10.00")
	result = send(shopify(shop), VARIANT_PATH, {"product_id": product["product_id"], "price": "12.50"})
	assert result.verdict.outcome is Outcome.DELIVERED, result
	assert shop.price(product["variant_id"]) == "12.50"
	(put,) = shop.received("PUT")
	assert put.path.endswith(f"/variants/{product['variant_id']}.json")
	assert put.body == {"variant": {"id": product["variant_id"], "price": "12.50"}}


def test_a_refused_value_is_dead_with_shopifys_errors(shop):
	product = shop.add_product()
	result = send(shopify(shop), VARIANT_PATH, {"variant_id": product["variant_id"], "price": "cheap"})
	assert (result.verdict.outcome, result.status_code) == (Outcome.DEAD, 422)
	assert "Shopify refused it: price must be a number" in result.verdict.reason


def test_throttled_is_retried_after_the_wait_shopify_asks_for(shop):
	product = shop.add_product()
	shop.throttle(1, retry_after="2.0")
	transport = shopify(shop)
	data = {"product_id": product["product_id"], "available": 4}
	first = send(transport, INVENTORY_SET_PATH, data)
	assert (first.verdict.outcome, first.verdict.retry_after, first.status_code) == (Outcome.RETRY, 2.0, 429)
	assert send(transport, INVENTORY_SET_PATH, data).verdict.outcome is Outcome.DELIVERED
	assert shop.level(product["inventory_item_id"], shop.location_id) == 4


def test_a_wrong_token_is_dead_and_says_so(shop):
	product = shop.add_product()
	result = send(
		shopify(shop, "shpat_wrong"), VARIANT_PATH, {"product_id": product["product_id"], "price": "1"}
	)
	assert (result.verdict.outcome, result.status_code) == (Outcome.DEAD, 401)
	assert "access token" in result.verdict.reason
	assert result.names == ["row-1"]


def test_an_order_is_cancelled_once_and_a_cancel_repeated_after_a_lost_answer_is_done(shop):
	order = shop.add_order()
	transport = shopify(shop)
	for _ in range(2):  # the second: as a retry after the first answer was lost
		result = send(transport, ORDER_ACTION_PATH, {"id": order, "action": "cancel"})
		assert result.verdict.outcome is Outcome.DELIVERED, result
	assert shop.orders[order]["cancelled_at"]
	assert [r.status for r in shop.received("POST", "/cancel")] == [200, 422]


def test_an_order_is_closed_and_a_status_without_an_action_sends_nothing(shop):
	order = shop.add_order()
	assert (
		send(shopify(shop), ORDER_ACTION_PATH, {"id": order, "action": "close"}).verdict.outcome
		is Outcome.DELIVERED
	)
	assert shop.orders[order]["closed_at"]
	nothing = send(shopify(shop), ORDER_ACTION_PATH, {"id": order, "action": ""})
	assert nothing.verdict.outcome is Outcome.DELIVERED and len(shop.requests) == 1
	bad = send(shopify(shop), ORDER_ACTION_PATH, {"id": order, "action": "delete"})
	assert bad.verdict.outcome is Outcome.DEAD
	missing = send(shopify(shop), ORDER_ACTION_PATH, {"id": 1, "action": "cancel"})
	assert (missing.verdict.outcome, missing.status_code) == (Outcome.DEAD, 404)


def test_any_other_target_is_sent_as_a_rest_api_receives_it():
	with RemoteSystem() as remote:
		transport = transports.kind("Shopify")(Endpoint(remote.url, timeout=2, allow_private=True))
		result = send(transport, "/hooks", {"id": "SKU-1"})
		assert result.verdict.outcome is Outcome.DELIVERED
		(request,) = remote.received("/hooks")
		assert request.json()["data"] == {"id": "SKU-1"}  # the envelope
	assert transports.kind("Shopify").requests_per_send == 3  # leases cover the look-ups


def test_test_connection_reads_the_shop_with_the_token(shop):
	assert shopify(shop).ping().status == 200
	assert shopify(shop, "shpat_wrong").ping().status == 401
	assert [r.path for r in shop.received("GET")] == [f"/admin/api/{API_VERSION}/shop.json"] * 2
