"""Guided setup: each preset makes rules a real site accepts, once; the WooCommerce one carries a
customer and an order all the way into ERPNext."""

import frappe

from erp_connect.engine.presets import PRESETS
from erp_connect.services.inbound import upsert
from erp_connect.testing.base import TEST_PREFIX, ConnectTestCase, make_item


class TestGuidedSetup(ConnectTestCase):
	def test_every_preset_creates_valid_rules_once(self):
		for preset in PRESETS:
			with self.subTest(preset):
				connector = self.make_connector()
				created = connector.apply_preset(preset)["created"]
				spec = PRESETS[preset]
				expected = sum(len(spec.get(k, [])) for k in ("push", "pull", "inbound"))
				self.assertEqual(len(created), expected)
				self.assertEqual(connector.apply_preset(preset)["created"], [], "nothing twice")
				self.assertEqual(
					frappe.db.get_value("Connector", connector.name, "connector_type"), spec["connector_type"]
				)
		self.assertRaises(frappe.ValidationError, connector.apply_preset, "Magento")
		connector.run_method("onload")  # what the form offers is every preset
		self.assertEqual(connector.get_onload().presets, list(PRESETS))

	def test_a_woocommerce_customer_and_order_land_in_erpnext(self):
		connector = self.make_connector(
			allowed_doctypes=[
				{"reference_doctype": "Customer", "can_create": 1, "can_update": 1},
				{"reference_doctype": "Sales Order", "can_create": 1, "can_update": 1},
			]
		)
		connector.apply_preset("WooCommerce")
		connector.reload()
		customers = frappe.get_doc(
			"Pull Rule", {"connector": connector.name, "reference_doctype": "Customer"}
		)
		woo_customer = {"id": 12, "first_name": TEMPLATE_NAME, "last_name": "Lee", "email": "ann@example.com"}
		result = upsert.upsert(connector, "Customer", [woo_customer], spec=customers.upsert_spec())
		self.assertEqual(result["created"], 1, result)
		cap = make_item(TEST_PREFIX + "CAP")
		order = {
			"id": 727,
			"customer_id": 12,
			"date_created": "2030-01-05T09:12:03",
			"line_items": [{"sku": cap.name, "quantity": 2, "price": 12.5}],
		}
		result = upsert.upsert(connector, "Sales Order", [order])
		self.assertEqual(result["created"], 1, result)
		so = frappe.get_doc("Sales Order", result["results"][0]["name"])
		self.assertEqual(
			frappe.db.get_value("Customer", so.customer, "customer_name"), f"{TEMPLATE_NAME} Lee"
		)
		self.assertEqual(str(so.delivery_date), "2030-01-05")
		self.assertEqual([(i.item_code, i.qty, i.rate) for i in so.items], [(cap.name, 2, 12.5)])


TEMPLATE_NAME = TEST_PREFIX + "Ann"
