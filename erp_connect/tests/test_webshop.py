"""The webshop presets end to end against fake Shopify and WooCommerce APIs on 127.0.0.1: an item's
stock level, its price in the shop's price list and an order's cancellation reach the shop, as the
platforms' docs describe the requests; a burst of movements sends the newest level, never an older
one after a newer; throttling is waited out; a refused token is dead-lettered and retried from Desk.
Also: push rules on connectors that are never called are refused."""

import time

import frappe

from erp_connect.services.push import delivery
from erp_connect.testing.base import ConnectTestCase, company, kill_worker, make_customer, start_worker
from erp_connect.testing.cleanup import delete_test_data
from erp_connect.testing.harness import drop_queued_jobs
from erp_connect.testing.pos import WAREHOUSE, receive, stock_item, stock_sales_order
from erp_connect.testing.webshop import FakeShopify, FakeWooCommerce

TOKEN = "shpat_test_0123456789"
SELLING = "Standard Selling"


class WebshopTestCase(ConnectTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.shopify = FakeShopify(token=TOKEN).start()
		cls.addClassCleanup(cls.shopify.stop)
		cls.woo = FakeWooCommerce(key="ck_shop", secret="cs_shop").start()
		cls.addClassCleanup(cls.woo.stop)

	def setUp(self):
		super().setUp()
		self.shopify.reset()
		self.woo.reset()
		self.addCleanup(delete_test_data)

	def shopify_connector(self, token: str = TOKEN):
		"""As a manager sets it up in Desk: the type and URL, the preset, then the token."""
		connector = self.make_connector(
			connector_type="Shopify", base_url=self.shopify.url, timeout_seconds=5
		)
		connector.apply_preset("Shopify")
		connector.reload()
		self.assertEqual(connector.api_key_header, "X-Shopify-Access-Token")  # the preset's
		connector.auth_type, connector.api_key = "API Key Header", token
		connector.save()
		return connector

	def woo_connector(self):
		connector = self.make_connector(
			connector_type="WooCommerce",
			base_url=self.woo.url,
			auth_type="Basic",
			username="ck_shop",
			password="cs_shop",
			timeout_seconds=5,
		)
		connector.apply_preset("WooCommerce")
		return connector

	def link(self, connector, doctype: str, name: str, external_id) -> None:
		"""What a pull (or a received order) leaves: the record's id at the shop."""
		frappe.get_doc(
			{
				"doctype": "Sync Link",
				"connector": connector.name,
				"reference_doctype": doctype,
				"reference_name": name,
				"external_id": str(external_id),
			}
		).insert(ignore_permissions=True)

	def drain(self, connector) -> None:
		frappe.db.commit()
		delivery.drain(connector.name)

	def events(self, connector, **filters) -> list:
		frappe.db.commit()
		return frappe.get_all(
			"Sync Event",
			{"connector": connector.name, **filters},
			["name", "status", "last_status_code", "last_error", "reference_doctype"],
			order_by="creation",
		)

	def levels_sent(self) -> list[int]:
		return [r.body["available"] for r in self.shopify.received("POST", "inventory_levels/set")]


class TestShopifyStock(WebshopTestCase):
	def setUp(self):
		super().setUp()
		self.item = stock_item()  # its Item Price is written before any shop rule exists
		self.connector = self.shopify_connector()
		self.product = self.shopify.add_product()
		self.link(self.connector, "Item", self.item, self.product["product_id"])
		frappe.db.commit()

	def level(self):
		return self.shopify.level(self.product["inventory_item_id"], self.shopify.location_id)

	def test_a_burst_of_movements_sets_the_final_level_once_at_the_right_item_and_location(self):
		for _ in range(50):
			receive(self.item, 1)
			frappe.db.commit()
		self.assertEqual(
			[e.status for e in self.events(self.connector, reference_doctype="Item")], ["Pending"]
		)
		self.drain(self.connector)
		(request,) = self.shopify.received("POST", "inventory_levels/set")
		self.assertEqual(
			request.body,
			{
				"location_id": self.shopify.location_id,
				"inventory_item_id": self.product["inventory_item_id"],
				"available": 50,
			},
		)
		self.assertEqual(self.level(), 50)
		self.assertEqual(
			[e.status for e in self.events(self.connector, reference_doctype="Item")], ["Delivered"]
		)

	def test_movements_while_workers_drain_never_send_an_older_level_after_a_newer(self):
		# earlier tests' drain jobs would keep the worker busy first (their connectors are gone)
		drop_queued_jobs(lambda kwargs: kwargs.get("connector") != self.connector.name)
		worker = start_worker(burst=False)
		self.addCleanup(kill_worker, worker)
		receive(self.item, 1)
		frappe.db.commit()
		self.wait_for_level(1)  # the worker drains now, woken by every commit
		for _ in range(49):
			receive(self.item, 1)
			frappe.db.commit()
		self.wait_for_level(50)
		sent = self.levels_sent()
		self.assertGreater(len(sent), 2, sent)  # sends ran between the movements
		self.assertEqual(sent, sorted(sent))  # each at least as new as the one before
		self.assertEqual(sent[-1], 50)

	def wait_for_level(self, level: int, seconds: float = 90) -> None:
		deadline = time.monotonic() + seconds
		while self.level() != level and time.monotonic() < deadline:
			time.sleep(0.1)
		self.assertEqual(self.level(), level, self.levels_sent())

	def test_a_cancelled_stock_entry_sets_the_level_back(self):
		receive(self.item, 5)
		entry = frappe.get_last_doc("Stock Entry", {"docstatus": 1})
		frappe.db.commit()
		self.drain(self.connector)
		self.assertEqual(self.level(), 5)
		entry.reload()
		entry.cancel()
		frappe.db.commit()
		self.drain(self.connector)
		self.assertEqual(self.levels_sent(), [5, 0])
		self.assertEqual(self.level(), 0)

	def test_throttled_the_level_is_sent_again_after_the_wait_shopify_asks_for(self):
		self.shopify.throttle(1, retry_after="2.0")
		receive(self.item, 3)
		self.drain(self.connector)
		(event,) = self.events(self.connector, reference_doctype="Item")
		self.assertEqual((event.status, event.last_status_code), ("Retrying", 429))
		self.assertIsNotNone(delivery.backoff_until(self.connector.name))  # the connector waits
		self.assertIsNone(self.level())
		self.make_due(event.name)
		self.drain(self.connector)
		self.assertEqual(self.level(), 3)
		self.assertEqual(
			[e.status for e in self.events(self.connector, reference_doctype="Item")], ["Delivered"]
		)

	def test_a_wrong_token_is_dead_visible_in_desk_and_retried_once_fixed(self):
		self.connector.api_key = "shpat_wrong"
		self.connector.save()
		receive(self.item, 2)
		self.drain(self.connector)
		(event,) = self.events(self.connector, reference_doctype="Item")
		self.assertEqual((event.status, event.last_status_code), ("Dead", 401))
		self.assertIn("refused the access token", event.last_error)
		self.assertEqual(self.connector.health()["state"], "failing")
		self.assertIsNone(self.level())

		self.connector.reload()
		self.connector.api_key = TOKEN
		self.connector.save()
		frappe.get_doc("Sync Event", event.name).retry()  # the Retry button
		self.drain(self.connector)
		self.assertEqual(self.level(), 2)
		self.assertEqual(
			[e.status for e in self.events(self.connector, reference_doctype="Item")], ["Delivered"]
		)

	def make_due(self, name: str) -> None:
		frappe.db.set_value("Sync Event", name, "next_attempt_at", frappe.utils.add_to_date(None, seconds=-1))
		frappe.cache.delete_value(delivery._backoff_key(self.connector.name))
		frappe.db.commit()


class TestShopifyLocations(WebshopTestCase):
	def test_a_shop_with_several_locations_gets_each_rules_level_at_its_location(self):
		shop = FakeShopify(token=TOKEN, locations=2).start()
		self.addCleanup(shop.stop)
		item = stock_item()
		connector = self.make_connector(
			connector_type="Shopify",
			base_url=shop.url,
			auth_type="API Key Header",
			api_key_header="X-Shopify-Access-Token",
			api_key=TOKEN,
		)
		connector.apply_preset("Shopify")
		product = shop.add_product()
		self.link(connector, "Item", item, product["product_id"])
		rule = frappe.get_doc("Sync Rule", {"connector": connector.name, "reference_doctype": "Item"})
		receive(item, 2)
		self.drain(connector)  # no location in the map, and the shop has two: a person must choose
		(dead,) = self.events(connector, reference_doctype="Item")
		self.assertEqual(dead.status, "Dead")
		self.assertIn("2 active locations", dead.last_error)

		second = shop.locations[1]["id"]
		rule.stock_warehouses = WAREHOUSE  # as the README says: its warehouses, and a location_id row
		rule.append(
			"field_map",
			{"external_path": "location_id", "transform": "Constant", "transform_option": str(second)},
		)
		rule.save()
		frappe.get_doc("Sync Event", dead.name).retry()
		self.drain(connector)
		self.assertEqual(shop.level(product["inventory_item_id"], second), 2)
		self.assertIsNone(shop.level(product["inventory_item_id"], shop.locations[0]["id"]))


class TestShopPrices(WebshopTestCase):
	def setUp(self):
		super().setUp()
		self.item = stock_item(rate=100)
		self.shop, self.wc = self.shopify_connector(), self.woo_connector()
		self.variant = self.shopify.add_product(price="100.00")
		self.wc_product = self.woo.add_product(regular_price="100.00")
		self.link(self.shop, "Item", self.item, self.variant["product_id"])
		self.link(self.wc, "Item", self.item, self.wc_product)
		frappe.db.commit()

	def drain_both(self) -> None:
		self.drain(self.shop)
		self.drain(self.wc)

	def test_a_price_change_in_the_shops_price_list_reaches_both_shops_newest_last(self):
		price = frappe.get_doc("Item Price", {"item_code": self.item, "price_list": SELLING})
		for rate in (11, 12.5):
			price.price_list_rate = rate
			price.save()
			frappe.db.commit()
		self.drain_both()
		self.assertEqual(self.shopify.price(self.variant["variant_id"]), "12.50")
		self.assertEqual(self.woo.product(self.wc_product)["regular_price"], "12.50")
		bodies = [r.body for r in self.shopify.received("PUT", "/variants/")]
		variant = self.variant["variant_id"]
		self.assertEqual(
			bodies, [{"variant": {"id": variant, "price": p}} for p in ("11.00", "12.50")]
		)  # in the order they were saved
		self.assertEqual(
			[r.body for r in self.woo.received("PUT")],
			[{"regular_price": "11.00"}, {"regular_price": "12.50"}],
		)

	def test_a_price_in_another_price_list_sends_nothing(self):
		frappe.get_doc(
			{
				"doctype": "Item Price",
				"item_code": self.item,
				"price_list": "Standard Buying",
				"price_list_rate": 7,
			}
		).insert(ignore_permissions=True)
		frappe.db.commit()
		self.drain_both()
		self.assertEqual(self.events(self.shop, reference_doctype="Item Price"), [])
		self.assertEqual(self.events(self.wc, reference_doctype="Item Price"), [])
		self.assertEqual((self.shopify.received("PUT"), self.woo.received("PUT")), ([], []))
		self.assertEqual(self.shopify.price(self.variant["variant_id"]), "100.00")


class TestShopifyOrders(WebshopTestCase):
	def test_an_order_cancelled_in_erpnext_is_cancelled_at_the_shop_once(self):
		connector = self.shopify_connector()
		order = stock_sales_order()
		shop_order = self.shopify.add_order()
		self.link(connector, "Sales Order", order.name, shop_order)  # the shop's order it came from
		frappe.db.commit()
		order.reload()
		order.cancel()
		self.drain(connector)
		self.drain(connector)
		(cancel,) = self.shopify.received("POST", "/cancel.json")
		self.assertTrue(cancel.path.endswith(f"/orders/{shop_order}/cancel.json"))
		self.assertTrue(self.shopify.orders[shop_order]["cancelled_at"])
		statuses = [e.status for e in self.events(connector, reference_doctype="Sales Order")]
		self.assertEqual(statuses, ["Delivered"])


class TestInboundOnlyConnectors(ConnectTestCase):
	def test_a_push_rule_on_a_connector_that_is_never_called_is_refused(self):
		self.addCleanup(delete_test_data)
		pos = self.make_connector(connector_type="POS")
		frappe.db.commit()
		with self.assertRaisesRegex(frappe.ValidationError, "nothing can be pushed to it"):
			self.make_rule(pos.name, "Customer", ("after_insert",))
		self.assertFalse(frappe.db.exists("Sync Rule", {"connector": pos.name}))
		inbound = frappe.get_doc(  # what such a connector does have: inbound rules
			{
				"doctype": "Sync Rule",
				"connector": pos.name,
				"reference_doctype": "Customer",
				"direction": "Inbound",
				"external_id_path": "id",
				"payload_mode": "Whole Document",
			}
		)
		pos.append("allowed_doctypes", {"reference_doctype": "Customer", "can_create": 1, "can_update": 1})
		pos.save()
		inbound.insert()
