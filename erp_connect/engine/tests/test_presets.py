import datetime

import jinja2
import pytest

from erp_connect.engine import mapping, presets, transports


def render(template: str, context: dict) -> str:
	return jinja2.Environment().from_string(template).render(**context)


def rules(field_map) -> list[mapping.FieldRule]:
	"""The preset's rows as an inbound rule reads them: external path -> ERPNext field."""
	return [mapping.FieldRule(path, field, transform, option) for field, path, transform, option in field_map]


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_every_preset_rule_is_valid(name):
	preset = presets.PRESETS[name]
	for spec in preset.get("pull", []) + preset.get("inbound", []) + preset.get("push", []):
		for rule in rules(spec.get("map") or []):
			assert mapping.rule_problems(rule) == [], (name, spec["doctype"], rule)
	assert preset["connector_type"] in transports.KINDS
	kind = transports.kind(preset["connector_type"])
	assert kind.calls_out or not preset.get("push"), name
	if preset.get("base_url"):
		assert kind.url_problem(preset["base_url"]) == "", name


def test_the_event_bus_preset_publishes_on_erp_subjects():
	preset = presets.PRESETS["Event Bus (NATS JetStream)"]
	assert preset["connector_type"] == "NATS JetStream"
	assert {p["target"] for p in preset["push"]} == {"erp.{doctype}.{event}"}
	assert {p["doctype"] for p in preset["push"]} == {"Customer", "Item", "Sales Order"}


def test_the_analytics_replica_preset_mirrors_whole_documents_with_every_change():
	preset = presets.PRESETS["Analytics Replica (PostgreSQL)"]
	assert transports.kind(preset["connector_type"]).mirrors_tables
	assert {p["payload_mode"] for p in preset["push"]} == {"Whole Document"}
	invoices = next(p for p in preset["push"] if p["doctype"] == "Sales Invoice")
	assert {"on_submit", "on_cancel", "on_update_after_submit", "on_trash"} <= set(invoices["events"])


def test_a_woocommerce_order_maps_to_a_sales_order():
	order = {
		"id": 727,
		"customer_id": 12,
		"date_created": "2026-11-24T09:12:03",
		"line_items": [
			{"sku": "HOODIE-M", "quantity": 2, "price": 45.0},
			{"sku": "CAP", "quantity": 1, "price": 12.5},
		],
	}
	links = {("Customer", "12"): "CUST-0007"}
	data = mapping.map_record(
		order, rules(presets.WOO_ORDER), mapping.INBOUND, render, lambda dt, ext: links[(dt, ext)]
	)
	assert data == {
		"customer": "CUST-0007",
		"delivery_date": "2026-11-24",
		"items": [
			{"item_code": "HOODIE-M", "qty": 2, "rate": 45.0},
			{"item_code": "CAP", "qty": 1, "rate": 12.5},
		],
	}


def test_a_woocommerce_customer_and_product_map_to_erpnext_fields():
	customer = {
		"id": 12,
		"first_name": "Ann",
		"last_name": "Lee",
		"email": "ann@example.com",
		"billing": {"phone": "0170"},
	}
	data = mapping.map_record(customer, rules(presets.WOO_CUSTOMER), mapping.INBOUND, render, None)
	assert data["customer_name"] == "Ann Lee"
	assert (data["email_id"], data["mobile_no"], data["customer_group"]) == (
		"ann@example.com",
		"0170",
		"All Customer Groups",
	)
	product = {"id": 5, "sku": "CAP", "name": "Cap", "description": "A cap", "regular_price": "12.499"}
	item = mapping.map_record(product, rules(presets.WOO_ITEM), mapping.INBOUND, render, None)
	assert (item["item_code"], item["standard_rate"], item["stock_uom"]) == ("CAP", 12.5, "Nos")


def test_field_map_rows():
	assert presets.field_map_rows([("item_code", "sku", mapping.NONE, None)]) == [
		{"erpnext_field": "item_code", "external_path": "sku", "transform": "None", "transform_option": None}
	]
	assert presets.field_map_rows(None) == []


class SiteUtils:
	"""The two frappe.utils a tracking template calls, for a site in UTC-5."""

	@staticmethod
	def get_datetime(text):
		return datetime.datetime.fromisoformat(text)

	@staticmethod
	def convert_utc_to_system_timezone(utc):
		return utc.replace(tzinfo=datetime.timezone.utc).astimezone(
			datetime.timezone(datetime.timedelta(hours=-5))
		)


def render_on_site(template: str, context: dict) -> str:
	return jinja2.Environment().from_string(template).render(frappe={"utils": SiteUtils}, **context)


def test_an_easypost_tracker_event_maps_to_a_shipment_tracking_event():
	from erp_connect.testing.carrier import FakeCarrier

	event = FakeCarrier.tracker_event("9400111", "out_for_delivery", "2026-12-02T07:30:05Z", "On the van")
	data = mapping.map_record(event, rules(presets.EASYPOST_TRACKING), mapping.INBOUND, render_on_site)
	assert data == {
		"tracking_number": "9400111",
		"status": "Out for Delivery",
		"event_time": "2026-12-02 02:30:05",  # 07:30:05 UTC in the site's time zone
		"message": "On the van",
		"location": "Memphis, TN, US",
		"carrier": "USPS",
		"carrier_detail": "out_for_delivery_detail",
		"tracker_id": event["result"]["id"],
	}
	event["result"]["status"] = "something_new"
	event["result"]["tracking_details"] = []
	data = mapping.map_record(event, rules(presets.EASYPOST_TRACKING), mapping.INBOUND, render_on_site)
	assert (data["status"], data["event_time"], data["message"]) == ("Unknown", "2026-12-02 02:30:05", "")


def test_the_easypost_shipment_map_reads_the_delivery_notes_addresses_and_item_weights():
	class Db:
		rows = {
			("Address", "SHIP", "address_line1"): "1 Main St",
			("Address", "SHIP", "city"): "Memphis",
			("Address", "SHIP", "country"): "United States",
			("Country", "United States", "code"): "us",
		}

		def get_value(self, doctype, name, field):
			assert name, "an empty address must not be read (get_value(None) reads any row)"
			return self.rows.get((doctype, name, field))

	class Frappe:
		db = Db()

	def render_with_frappe(template, context):
		return jinja2.Environment().from_string(template).render(frappe=Frappe(), **context)

	note = {
		"customer_name": "Ann Lee",
		"shipping_address_name": None,
		"customer_address": "SHIP",
		"company": "Acme",
		"dispatch_address_name": None,
		"company_address": None,
		"items": [{"item_code": "A", "qty": 2, "weight_per_unit": 0.5, "weight_uom": "Kg"}],
	}
	push_rules = [mapping.FieldRule(f, path, t, o) for f, path, t, o in presets.EASYPOST_SHIPMENT]
	data = mapping.map_record(note, push_rules, mapping.OUTBOUND, render_with_frappe)
	assert data["to_address"]["name"] == "Ann Lee"
	assert (data["to_address"]["street1"], data["to_address"]["city"], data["to_address"]["country"]) == (
		"1 Main St",
		"Memphis",
		"US",
	)
	assert set(data["from_address"].values()) == {"Acme", ""}  # no company address: the carrier is not asked
	assert data["items"] == [{"item_code": "A", "qty": 2, "weight_per_unit": 0.5, "weight_uom": "Kg"}]


def push(name: str, doctype: str) -> dict:
	return next(p for p in presets.PRESETS[name]["push"] if p["doctype"] == doctype)


def outbound_rules(field_map) -> list[mapping.FieldRule]:
	return [mapping.FieldRule(field, path, transform, option) for field, path, transform, option in field_map]


def test_the_shops_get_the_price_of_their_price_list_as_text_on_their_product():
	price = {"item_code": "SKU-1", "price_list": "Standard Selling", "price_list_rate": 12.5}
	links = {("Item", "SKU-1"): "4711"}
	expected = {
		"WooCommerce": {"id": "4711", "regular_price": "12.50"},
		"Shopify": {"product_id": "4711", "price": "12.50"},
	}
	for name, data in expected.items():
		rule = push(name, "Item Price")
		assert rule["condition"] == '[["price_list", "=", "Standard Selling"]]'
		assert rule["events"] == ["on_update"]
		out = mapping.map_record(
			price, outbound_rules(rule["map"]), mapping.OUTBOUND, render, lambda dt, name: links[(dt, name)]
		)
		assert out == data, name


def test_shopify_gets_the_stock_level_and_an_action_for_the_orders_status():
	shopify = transports.shopify
	stock = push("Shopify", "Item")
	assert (stock["events"], stock["target"]) == (["on_stock_change"], shopify.INVENTORY_SET_PATH)
	links = {("Item", "SKU-1"): "4711", ("Sales Order", "SO-1"): "99"}
	resolve = lambda dt, name: links[(dt, name)]  # noqa: E731
	level = mapping.map_record(
		{"name": "SKU-1", "stock_qty": 7.0}, outbound_rules(stock["map"]), mapping.OUTBOUND, render, resolve
	)
	assert level == {"product_id": "4711", "available": 7}
	orders = push("Shopify", "Sales Order")
	assert set(orders["events"]) == {"on_status_change", "on_cancel"}
	actions = {
		status: mapping.map_record(
			{"name": "SO-1", "status": status},
			outbound_rules(orders["map"]),
			mapping.OUTBOUND,
			render,
			resolve,
		)["action"]
		for status in ("To Deliver and Bill", "To Bill", "Completed", "Closed", "Cancelled")
	}
	assert actions == {
		"To Deliver and Bill": "",
		"To Bill": "",
		"Completed": "close",
		"Closed": "close",
		"Cancelled": "cancel",
	}
	assert presets.PRESETS["Shopify"]["api_key_header"] == "X-Shopify-Access-Token"
