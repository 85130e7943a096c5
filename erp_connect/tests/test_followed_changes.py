"""What ERPNext changes with plain SQL, followed through the documents that cause it: an item's
stock level (the stock ledger) and a Sales Order's status (its delivery notes and invoices). A burst
of movements sends the newest level once; a movement that commits while the drain claims the item's
event is never lost; a cancellation sends the level back; the shop hears its order's status."""

import time

import frappe

from erp_connect.services.push import followed
from erp_connect.services.push.wake import DRAIN
from erp_connect.testing.base import HeldOpenTransaction, make_customer, start_worker
from erp_connect.testing.pos import WAREHOUSE, receive, stock_item, stock_sales_order
from erp_connect.testing.push import PushTestCase
from erp_connect.testing.remote import Reply

STOCK_MAP = [("item_code", "sku"), ("stock_qty", "stock_quantity")]


class TestStockLevels(PushTestCase):
	def setUp(self):
		super().setUp()
		self.rule = self.make_rule(
			self.connector.name, "Item", ("on_stock_change",), STOCK_MAP, target_path="/stock"
		)
		self.item = stock_item()
		frappe.db.commit()

	def stock_events(self) -> list:
		frappe.db.commit()
		return frappe.get_all(
			"Sync Event",
			{"sync_rule": self.rule.name, "reference_name": self.item},
			["name", "status", "payload", "seq"],
			order_by="seq",
		)

	def sent_levels(self) -> list[float]:
		return [r.json()["data"]["stock_quantity"] for r in self.remote.received("/stock")]

	def test_a_burst_of_movements_sends_the_newest_level_once(self):
		for _ in range(30):
			receive(self.item, 1)
			frappe.db.commit()
		events = self.stock_events()
		self.assertEqual([e.status for e in events], ["Pending"])  # coalesced: one waits
		self.drain()
		self.assertEqual(self.sent_levels(), [30.0])
		body = self.remote.received("/stock")[0].json()
		self.assertEqual((body["type"], body["data"]["sku"]), ("Item.on_stock_change", self.item))
		self.assertEqual(frappe.parse_json(self.stock_events()[0].payload)["data"]["stock_quantity"], 30.0)

	def test_a_cancelled_movement_sends_the_level_back(self):
		receive(self.item, 5)
		entry = frappe.get_last_doc("Stock Entry", {"docstatus": 1})
		frappe.db.commit()
		self.drain()
		entry.reload()
		entry.cancel()
		frappe.db.commit()
		self.drain()
		self.assertEqual(self.sent_levels(), [5.0, 0.0])

	def test_a_movement_committing_while_the_drain_claims_is_in_the_level_sent(self):
		receive(self.item, 1)
		frappe.db.commit()  # one event waits, saying 1
		# a second movement of the item, its transaction held open: it finds the waiting event and
		# locks it, so the drain's claim must wait for its commit and then read 2
		held = HeldOpenTransaction(f"from erp_connect.testing.pos import receive\nreceive({self.item!r}, 1)")
		self.addCleanup(held.close)
		frappe.enqueue(DRAIN, connector=self.connector.name)
		frappe.db.commit()
		worker = start_worker(burst=True)
		time.sleep(2)  # the drain is blocked on the held movement now
		self.assertEqual(self.sent_levels(), [])
		held.commit()
		worker.wait(60)
		self.assertEqual(self.sent_levels(), [2.0])
		self.assertEqual([e.status for e in self.stock_events()], ["Delivered"])

	def test_movements_during_a_send_follow_with_a_newer_level_never_an_older_one(self):
		receive(self.item, 1)
		frappe.db.commit()
		(first,) = self.stock_events()
		frappe.db.set_value("Sync Event", first.name, "status", "Sending")  # claimed, on its way
		receive(self.item, 2)
		frappe.db.commit()
		events = self.stock_events()
		self.assertEqual([e.status for e in events], ["Sending", "Pending"])  # a new one: after it
		frappe.db.set_value("Sync Event", first.name, {"status": "Pending", "lease_until": None})
		frappe.db.commit()
		self.drain()
		self.drain()
		self.assertEqual(self.sent_levels(), [3.0, 3.0])  # each as it was when it was sent

	def test_only_the_rules_warehouses_count_and_send(self):
		company = frappe.db.get_value("Warehouse", WAREHOUSE, "company")
		filters = {"is_group": 0, "name": ("!=", WAREHOUSE), "company": company}
		other = frappe.get_all("Warehouse", filters, pluck="name")[0]
		self.rule.stock_warehouses = WAREHOUSE
		self.rule.save()
		frappe.db.commit()
		self.assertEqual(self.rule.push_spec().warehouses, (WAREHOUSE,))
		receive(self.item, 4)
		frappe.db.commit()
		self.drain()
		self.assertEqual(self.sent_levels(), [4.0])
		followed.follow(followed.STOCK_EVENT, self.item, warehouse=other)  # elsewhere: nothing
		frappe.db.commit()
		self.assertEqual(len(self.stock_events()), 1)

	def test_stock_changes_is_for_items_and_real_warehouses(self):
		with self.assertRaises(frappe.ValidationError):
			self.make_rule(self.connector.name, "Customer", ("on_stock_change",))
		self.rule.stock_warehouses = "No Such Warehouse - XX"
		self.assertRaises(frappe.ValidationError, self.rule.save)


class TestWooCommerceStock(PushTestCase):
	"""The WooCommerce preset end to end: a stock movement in ERPNext sets the product's
	stock_quantity at the shop, the product found by the id the item's pull linked it with."""

	def test_a_movement_sets_the_products_stock_quantity_at_the_shop(self):
		connector = self.make_connector(
			connector_type="WooCommerce", auth_type="Basic", username="ck_1", password="cs_1"
		)
		connector.apply_preset("WooCommerce")
		item = stock_item()
		frappe.get_doc(
			{
				"doctype": "Sync Link",
				"connector": connector.name,
				"reference_doctype": "Item",
				"reference_name": item,
				"external_id": "4711",  # as the product pull left it
			}
		).insert(ignore_permissions=True)
		path = "/wp-json/wc/v3/products/4711"
		self.remote.set_default(path, Reply(200, {"id": 4711, "stock_quantity": 7, "manage_stock": True}))
		receive(item, 3)
		frappe.db.commit()
		receive(item, 4)
		frappe.db.commit()
		self.drain_connector(connector.name)
		(request,) = self.remote.received(path)
		self.assertEqual((request.method, request.json()), ("PUT", {"stock_quantity": 7}))
		self.assertTrue(request.headers["authorization"].startswith("Basic "))

		unlinked = stock_item(qty=2)  # never pulled from the shop: no product to update
		frappe.db.commit()
		self.drain_connector(connector.name)
		events = frappe.get_all(
			"Sync Event", {"connector": connector.name, "reference_name": unlinked}, ["status", "last_error"]
		)
		self.assertEqual([e.status for e in events], ["Dead"])
		self.assertIn(f"{unlinked} has no id at {connector.name}", events[0].last_error)

	def drain_connector(self, name: str) -> None:
		from erp_connect.services.push import delivery

		frappe.db.commit()
		delivery.drain(name)


class TestExternalIds(PushTestCase):
	def test_a_push_names_the_record_by_its_id_at_the_connectors_system(self):
		rule = self.make_rule(
			self.connector.name,
			"Customer",
			("on_update",),
			[("name", "id", "External ID Link", "Customer"), ("customer_name", "name")],
			target_path="/customers",
		)
		linked, unlinked = make_customer(), make_customer()
		frappe.get_doc(
			{
				"doctype": "Sync Link",
				"connector": self.connector.name,
				"reference_doctype": "Customer",
				"reference_name": linked.name,
				"external_id": "cus_42",
			}
		).insert(ignore_permissions=True)
		linked.save()  # its insert was before the link: that event went Dead, this one names cus_42
		self.drain()
		bodies = [r.json()["data"] for r in self.remote.received("/customers")]
		self.assertEqual(bodies, [{"id": "cus_42", "name": linked.customer_name}])
		(dead,) = frappe.get_all(
			"Sync Event", {"sync_rule": rule.name, "reference_name": unlinked.name}, ["status", "last_error"]
		)
		self.assertEqual(dead.status, "Dead")
		self.assertIn(f"{unlinked.name} has no id at {self.connector.name}", dead.last_error)


class TestWooCommerceOrderStatus(PushTestCase):
	"""An order that came from the shop: its status goes back when ERPNext delivers, bills or
	cancels it, although ERPNext changes a Sales Order's status without saving the order."""

	def test_delivering_and_cancelling_the_delivery_send_the_orders_status(self):
		from erpnext.selling.doctype.sales_order.sales_order import make_delivery_note

		connector = self.make_connector(
			connector_type="WooCommerce", auth_type="Basic", username="ck", password="cs"
		)
		connector.apply_preset("WooCommerce")
		order = stock_sales_order()
		frappe.get_doc(
			{
				"doctype": "Sync Link",
				"connector": connector.name,
				"reference_doctype": "Sales Order",
				"reference_name": order.name,
				"external_id": "727",  # the shop's order it came from
			}
		).insert(ignore_permissions=True)
		path = "/wp-json/wc/v3/orders/727"
		self.remote.set_default(path, Reply(200, {"id": 727}))
		frappe.db.commit()
		delivery = make_delivery_note(order.name)
		delivery.insert()
		delivery.submit()
		frappe.db.commit()
		self.assertEqual(frappe.db.get_value("Sales Order", order.name, "status"), "To Bill")
		delivery_drain(connector.name)
		delivery.reload()
		delivery.cancel()
		frappe.db.commit()
		delivery_drain(connector.name)
		sent = [(r.method, r.json()) for r in self.remote.received(path)]
		self.assertEqual(sent, [("PUT", {"status": "completed"}), ("PUT", {"status": "processing"})])


def delivery_drain(connector: str) -> None:
	from erp_connect.services.push import delivery

	frappe.db.commit()
	delivery.drain(connector)
