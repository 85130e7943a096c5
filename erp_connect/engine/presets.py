"""Guided setup: what each common kind of connection needs, as plain data the Connector form turns
into rules. Field maps read ERPNext field <- external path for inbound and pull rules, and
ERPNext field -> external path for push rules (the same rows, read the other way)."""

import json

from erp_connect.engine.mapping import CONSTANT, EXTERNAL_ID_LINK, NONE, ROUND, TEMPLATE, VALUE_MAP
from erp_connect.engine.transports import shopify
from erp_connect.engine.transports.easypost import SHIPMENTS_PATH, STATUSES
from erp_connect.engine.transports.hubspot import OBJECTS_PATH

# (erpnext_field, external_path, transform, option)
WOO_ITEM = [
	("item_code", "sku", NONE, None),
	("item_name", "name", NONE, None),
	("description", "description", NONE, None),
	("standard_rate", "regular_price", ROUND, "2"),
	("item_group", "group", CONSTANT, "All Item Groups"),
	("stock_uom", "uom", CONSTANT, "Nos"),
]
WOO_CUSTOMER = [
	("customer_name", "first_name", TEMPLATE, "{{ doc.first_name }} {{ doc.last_name }}"),
	("email_id", "email", NONE, None),
	("mobile_no", "billing.phone", NONE, None),
	("customer_type", "type", CONSTANT, "Individual"),
	("customer_group", "group", CONSTANT, "All Customer Groups"),
	("territory", "territory", CONSTANT, "All Territories"),
]
WOO_ORDER = [
	("customer", "customer_id", EXTERNAL_ID_LINK, "Customer"),
	("delivery_date", "date_created", TEMPLATE, "{{ value[:10] }}"),
	("items[].item_code", "line_items[].sku", NONE, None),
	("items[].qty", "line_items[].quantity", NONE, None),
	("items[].rate", "line_items[].price", NONE, None),
]
# an item's stock level to its WooCommerce product (the product id: the item's Sync Link)
WOO_STOCK = [
	("name", "id", EXTERNAL_ID_LINK, "Item"),
	("stock_qty", "stock_quantity", ROUND, "0"),
]
# an order's status back to the WooCommerce order it came from, when ERPNext delivers, bills or
# cancels it
WOO_ORDER_STATUS = [
	("name", "id", EXTERNAL_ID_LINK, "Sales Order"),
	(
		"status",
		"status",
		VALUE_MAP,
		'{"To Bill": "completed", "Completed": "completed", "Closed": "completed", '
		'"Cancelled": "cancelled", "*": "processing"}',
	),
]
# the shop's prices: the Item Prices of one price list (the rule's condition), each to the product of
# its item; a price as text with two decimals, as both shops write prices
SHOP_PRICE_LIST = "Standard Selling"
SHOP_PRICE_CONDITION = json.dumps([["price_list", "=", SHOP_PRICE_LIST]])
PRICE_TEXT = "{{ '%.2f' | format(value or 0) }}"
WOO_PRICE = [
	("item_code", "id", EXTERNAL_ID_LINK, "Item"),
	("price_list_rate", "regular_price", TEMPLATE, PRICE_TEXT),
]
SHOPIFY_ITEM = [
	("item_code", "id", NONE, None),
	("item_name", "title", NONE, None),
	("description", "body_html", NONE, None),
	("item_group", "group", CONSTANT, "All Item Groups"),
	("stock_uom", "uom", CONSTANT, "Nos"),
]
SHOPIFY_CUSTOMER = [
	("customer_name", "first_name", TEMPLATE, "{{ doc.first_name }} {{ doc.last_name }}"),
	("email_id", "email", NONE, None),
	("mobile_no", "phone", NONE, None),
	("customer_type", "type", CONSTANT, "Individual"),
	("customer_group", "group", CONSTANT, "All Customer Groups"),
	("territory", "territory", CONSTANT, "All Territories"),
]
SHOPIFY_ORDER = [
	("customer", "customer.id", EXTERNAL_ID_LINK, "Customer"),
	("delivery_date", "created_at", TEMPLATE, "{{ value[:10] }}"),
	("items[].item_code", "line_items[].product_id", EXTERNAL_ID_LINK, "Item"),
	("items[].qty", "line_items[].quantity", NONE, None),
	("items[].rate", "line_items[].price", NONE, None),
]
# Shopify: each item is one product with one variant, linked by the product pull; the transport
# reads the variant's ids and the shop's location (engine/transports/shopify.py)
SHOPIFY_STOCK = [
	("name", "product_id", EXTERNAL_ID_LINK, "Item"),
	("stock_qty", "available", ROUND, "0"),
]
SHOPIFY_PRICE = [
	("item_code", "product_id", EXTERNAL_ID_LINK, "Item"),
	("price_list_rate", "price", TEMPLATE, PRICE_TEXT),
]
# a cancelled order is cancelled at the shop, a completed or closed one closed (archived); other
# statuses tell the shop nothing (fulfilment stays in Shopify)
SHOPIFY_ORDER_STATUS = [
	("name", "id", EXTERNAL_ID_LINK, "Sales Order"),
	(
		"status",
		"action",
		VALUE_MAP,
		'{"Cancelled": "cancel", "Completed": "close", "Closed": "close", "*": ""}',
	),
]
SUBMITTABLE_EVENTS = [
	"after_insert",
	"on_update",
	"on_submit",
	"on_update_after_submit",
	"on_cancel",
	"on_trash",
]
SHARED_ITEM = [
	(f, f, NONE, None) for f in ("item_code", "item_name", "item_group", "stock_uom", "description")
]
SHARED_CUSTOMER = [
	(f, f, NONE, None) for f in ("customer_name", "customer_type", "customer_group", "territory")
]
SHARED_PRICE_LIST = [(f, f, NONE, None) for f in ("price_list_name", "currency", "selling", "buying")]


def _address_rows(source: str, fallback: str, target: str) -> list[tuple]:
	"""EasyPost address fields read from the ERPNext Address a Delivery Note links to (``source``,
	or ``fallback`` when it is empty), by templates."""
	address = (
		f"{{% set a = value or doc.{fallback} %}}"  # no address: nothing (get_value(None) reads any row)
	)
	rows = [
		(
			source,
			f"{target}.{external}",
			TEMPLATE,
			f"{address}{{{{ a and frappe.db.get_value('Address', a, '{field}') or '' }}}}",
		)
		for external, field in (
			("street1", "address_line1"),
			("street2", "address_line2"),
			("city", "city"),
			("state", "state"),
			("zip", "pincode"),
			("phone", "phone"),
			("email", "email_id"),
		)
	]
	country = "frappe.db.get_value('Country', frappe.db.get_value('Address', a, 'country'), 'code')"
	return [
		*rows,
		(source, f"{target}.country", TEMPLATE, f"{address}{{{{ (a and {country} or '') | upper }}}}"),
	]


# a submitted Delivery Note -> the shipment the carrier transport builds (engine/transports/easypost.py)
EASYPOST_SHIPMENT = [
	("customer_name", "to_address.name", NONE, None),
	*_address_rows("shipping_address_name", "customer_address", "to_address"),
	("company", "from_address.company", NONE, None),
	*_address_rows("dispatch_address_name", "company_address", "from_address"),
	("items[].item_code", "items[].item_code", NONE, None),
	("items[].qty", "items[].qty", NONE, None),
	("items[].weight_per_unit", "items[].weight_per_unit", NONE, None),
	("items[].weight_uom", "items[].weight_uom", NONE, None),
]
# an EasyPost tracker.updated Event -> one Shipment Tracking Event (its id is the external id)
EASYPOST_TRACKING = [
	("tracking_number", "result.tracking_code", NONE, None),
	("status", "result.status", VALUE_MAP, json.dumps({**STATUSES, "*": "Unknown"})),
	(  # the carrier's time of its latest detail (UTC), in the site's time zone as Datetime fields are
		"event_time",
		"result.tracking_details",
		TEMPLATE,
		"{% set t = ((value[-1].datetime if value else '') or doc.result.updated_at or '')[:19] | replace('T', ' ') %}"
		"{{ t and frappe.utils.convert_utc_to_system_timezone(frappe.utils.get_datetime(t)).strftime('%Y-%m-%d %H:%M:%S') }}",
	),
	("message", "result.tracking_details", TEMPLATE, "{{ (value[-1].message if value else '') or '' }}"),
	(
		"location",
		"result.tracking_details",
		TEMPLATE,
		"{% if value %}{% set l = value[-1].tracking_location or {} %}"
		"{{ [l.city, l.state, l.country] | select | join(', ') }}{% endif %}",
	),
	("carrier", "result.carrier", NONE, None),
	("carrier_detail", "result.status_detail", NONE, None),
	("tracker_id", "result.id", NONE, None),
]

# HubSpot (engine/transports/hubspot.py): records read from it are normalized (companies, company_id,
# emails, phones); what goes to it is {"properties": ..., "associations": [{"doctype", "name"}]}
HUBSPOT_COMPANY_IN = [
	("customer_name", "properties.name", NONE, None),
	("website", "properties.domain", NONE, None),
	("customer_type", "type", CONSTANT, "Company"),
	("customer_group", "group", CONSTANT, "All Customer Groups"),
	("territory", "territory", CONSTANT, "All Territories"),
]
HUBSPOT_COMPANY_OUT = [
	("customer_name", "properties.name", NONE, None),
	("website", "properties.domain", NONE, None),
]
HUBSPOT_CONTACT_IN = [
	("first_name", "properties.firstname", NONE, None),
	("last_name", "properties.lastname", NONE, None),
	("email_ids[].email_id", "emails[].address", NONE, None),
	("email_ids[].is_primary", "emails[].address", CONSTANT, "1"),
	("phone_nos[].phone", "phones[].number", NONE, None),
	("phone_nos[].is_primary_phone", "phones[].number", CONSTANT, "1"),
	# the contact's companies -> the Contact's links to their Customers
	("links[].link_doctype", "companies[].id", CONSTANT, "Customer"),
	("links[].link_name", "companies[].id", EXTERNAL_ID_LINK, "Customer"),
]
HUBSPOT_CONTACT_OUT = [
	("first_name", "properties.firstname", NONE, None),
	("last_name", "properties.lastname", NONE, None),
	("email_id", "properties.email", NONE, None),
	("phone", "properties.phone", NONE, None),
	("links[].link_doctype", "associations[].doctype", NONE, None),
	("links[].link_name", "associations[].name", NONE, None),
]
HUBSPOT_DEAL_IN = [
	("title", "properties.dealname", NONE, None),
	("opportunity_amount", "properties.amount", NONE, None),
	("expected_closing", "properties.closedate", TEMPLATE, "{{ value[:10] if value else '' }}"),
	("opportunity_from", "from", CONSTANT, "Customer"),
	("party_name", "company_id", EXTERNAL_ID_LINK, "Customer"),
]
HUBSPOT_DEAL_OUT = [
	("title", "properties.dealname", NONE, None),
	("opportunity_amount", "properties.amount", NONE, None),
	("expected_closing", "properties.closedate", NONE, None),
	("opportunity_from", "associations.doctype", NONE, None),
	("party_name", "associations.name", NONE, None),
]
HUBSPOT_OBJECTS = (
	("Customer", "companies", HUBSPOT_COMPANY_IN, HUBSPOT_COMPANY_OUT),
	("Contact", "contacts", HUBSPOT_CONTACT_IN, HUBSPOT_CONTACT_OUT),
	("Opportunity", "deals", HUBSPOT_DEAL_IN, HUBSPOT_DEAL_OUT),
)

PRESETS = {
	"Webhook Receiver": {
		"connector_type": "Webhook",
		"help": "Send ERPNext changes to a URL that accepts signed webhooks. Add a signing secret.",
		"push": [
			{"doctype": "Customer", "events": ["after_insert", "on_update"], "payload_mode": "Whole Document"}
		],
	},
	"REST API": {
		"connector_type": "REST API",
		"help": "Read a REST API's list on a schedule. Set the list path, pagination and field map.",
		"pull": [
			{"doctype": "Customer", "list_path": "/customers", "pagination": "Page Number", "map": None}
		],
	},
	"Another ERPNext Site": {
		"connector_type": "Frappe Site",
		"help": "Share Items, Customers and Price Lists with another ERPNext site (Frappe Token auth).",
		"push": [
			{"doctype": d, "events": ["after_insert", "on_update"], "map": m}
			for d, m in (
				("Item", SHARED_ITEM),
				("Customer", SHARED_CUSTOMER),
				("Price List", SHARED_PRICE_LIST),
			)
		],
		"pull": [
			{"doctype": d, "map": m}
			for d, m in (
				("Item", SHARED_ITEM),
				("Customer", SHARED_CUSTOMER),
				("Price List", SHARED_PRICE_LIST),
			)
		],
	},
	"Event Bus (NATS JetStream)": {
		"connector_type": "NATS JetStream",
		"base_url": "nats://127.0.0.1:4222",
		"help": (
			"Publish every change of Customers and Items, and submitted or cancelled Sales Orders, to "
			"NATS JetStream on subjects erp.<doctype>.<event> (erp.customer.on_update). Set the Base URL "
			"to your NATS server (nats://user:password@host:4222) and create a stream whose subjects "
			"cover erp.> with a duplicate window (nats stream add ERP --subjects 'erp.>' --dupe-window 2h): "
			"a message no stream takes is dead-lettered, one whose PubAck is lost is sent again with the "
			"same Nats-Msg-Id and stored once."
		),
		"push": [
			{
				"doctype": d,
				"events": events,
				"payload_mode": "Whole Document",
				"target": "erp.{doctype}.{event}",
			}
			for d, events in (
				("Customer", ["after_insert", "on_update", "on_trash"]),
				("Item", ["after_insert", "on_update", "on_trash"]),
				("Sales Order", ["on_submit", "on_cancel"]),
			)
		],
	},
	"Analytics Replica (PostgreSQL)": {
		"connector_type": "PostgreSQL",
		"base_url": "postgresql://erp_replica@127.0.0.1:5432/analytics",
		"help": (
			"Mirror Customers, Items, Sales Orders and Sales Invoices (with their item rows) into "
			"PostgreSQL tables for Metabase, Superset or any SQL tool: one table per doctype in the "
			"Replica Schema (erpnext.sales_invoice, erpnext.sales_invoice_item, ...), the documents "
			"already there copied first, then every save within seconds. Set the Base URL to your "
			"database, Auth Type Basic with its user and password, and Allow Private Network Targets "
			"for a database on your own network; Test Connection logs in."
		),
		"push": [
			{"doctype": d, "events": events, "payload_mode": "Whole Document"}
			for d, events in (
				("Customer", ["after_insert", "on_update", "on_trash"]),
				("Item", ["after_insert", "on_update", "on_trash"]),
				("Sales Order", SUBMITTABLE_EVENTS),
				("Sales Invoice", SUBMITTABLE_EVENTS),
			)
		],
	},
	"Carrier (EasyPost)": {
		"connector_type": "EasyPost",
		"help": (
			"Every submitted Delivery Note becomes a shipment at EasyPost: the customer's shipping address "
			"(or its billing address), the company's dispatch address (or its company address), and one "
			"parcel weighing the items' total (set Weight Per Unit and Weight UOM on each Item). The "
			"cheapest rate is bought; the tracking number, label and carrier appear in the note's "
			"Shipping section. Set the Base URL to https://api.easypost.com, Auth Type Basic with your "
			"EasyPost API key as Username and any text as Password (EasyPost reads only the key). For "
			"tracking: set Records Become to Shipment Tracking Event, a Receive Secret, and an API User "
			"with the roles Connect API User and Shipment Tracker; then add a webhook in EasyPost with "
			"the same secret and the URL /api/method/erp_connect.api.v1.receive?connector=<this "
			"connector> on this site. A note whose shipment fails (Dead Sync Event) shows the carrier's "
			"message: fix the note's addresses or the items' weights and press Retry on the event."
		),
		"push": [
			{
				"doctype": "Delivery Note",
				"events": ["on_submit"],
				"condition": '[["is_return", "=", 0]]',  # a sales return ships nothing
				"target": SHIPMENTS_PATH,
				"map": EASYPOST_SHIPMENT,
			}
		],
		"inbound": [{"doctype": "Shipment Tracking Event", "id_path": "id", "map": EASYPOST_TRACKING}],
		"receive": {"doctype": "Shipment Tracking Event", "scheme": "EasyPost HMAC"},
	},
	"CRM (HubSpot)": {
		"connector_type": "HubSpot",
		"base_url": "https://api.hubapi.com",
		"help": (
			"Companies, contacts and deals stay the same in HubSpot and ERPNext: HubSpot companies are "
			"Customers, contacts are Contacts (linked to their company's Customer), deals are "
			"Opportunities, and a deal won in HubSpot becomes a draft Sales Order. In HubSpot create a "
			"private app (Settings > Integrations > Private Apps) with the scopes crm.objects.contacts, "
			"crm.objects.companies and crm.objects.deals (read and write); put its access token in "
			"Bearer Token (Auth Type Bearer Token). Under its Webhooks, set the target URL to this "
			"connector's receive URL, {receive_url}, subscribe to the creation and property changes "
			"of contacts, companies and deals, and copy the app's client secret into Receive Secret. "
			"Set the API User (roles Connect API User and Sales User) and the Deal Item that a won "
			"deal's Sales Order is made of. Pulls read all three lists every 15 minutes as well, so "
			"nothing a lost webhook carried stays missing."
		),
		"pull": [
			{"doctype": d, "list_path": f"{OBJECTS_PATH}/{o}", "map": m_in}
			for d, o, m_in, _ in HUBSPOT_OBJECTS
		],
		"push": [
			{
				"doctype": d,
				"events": ["on_update"],  # also fired by an insert: one event a save
				"target": f"{OBJECTS_PATH}/{o}",
				"map": m_out,
			}
			for d, o, _, m_out in HUBSPOT_OBJECTS
		],
		"receive": {"doctype": "Contact", "scheme": "HubSpot v3"},
		"writes": ["Sales Order"],
		"connector_fields": {"won_deals_become": "Sales Order"},
	},
	"WooCommerce": {
		"connector_type": "WooCommerce",
		"help": (
			"Products and customers pulled from /wp-json/wc/v3; orders arrive as webhooks; each "
			"product's stock quantity is updated whenever the item's stock moves in ERPNext (turn "
			"on Manage stock on the products; Auth Type Basic with the consumer key and secret); "
			"each product's regular price follows the item's price in the price list "
			f"{SHOP_PRICE_LIST} (change the price rule's Condition for another list); an order's "
			"status goes back to the shop when ERPNext delivers, bills or cancels it."
		),
		"pull": [
			{
				"doctype": "Item",
				"list_path": "/wp-json/wc/v3/products",
				"pagination": "Link Header",
				"since_param": "modified_after",
				"id_field": "id",
				"modified_field": "date_modified_gmt",
				"map": WOO_ITEM,
			},
			{
				"doctype": "Customer",
				"list_path": "/wp-json/wc/v3/customers",
				"pagination": "Link Header",
				"since_param": "modified_after",
				"id_field": "id",
				"modified_field": "date_modified_gmt",
				"map": WOO_CUSTOMER,
			},
		],
		"push": [
			{
				"doctype": "Item",
				"events": ["on_stock_change"],
				"target": "/wp-json/wc/v3/products/{id}",
				"map": WOO_STOCK,
			},
			{
				"doctype": "Item Price",
				"events": ["on_update"],  # an insert runs on_update too
				"condition": SHOP_PRICE_CONDITION,
				"target": "/wp-json/wc/v3/products/{id}",
				"map": WOO_PRICE,
			},
			{
				"doctype": "Sales Order",
				"events": ["on_status_change", "on_cancel"],
				"target": "/wp-json/wc/v3/orders/{id}",
				"map": WOO_ORDER_STATUS,
			},
		],
		"inbound": [{"doctype": "Sales Order", "id_path": "id", "map": WOO_ORDER}],
		"receive": {
			"doctype": "Sales Order",
			"scheme": "HMAC-SHA256 Header",
			"header": "X-WC-Webhook-Signature",
		},
	},
	"Shopify": {
		"connector_type": "Shopify",
		"api_key_header": shopify.ACCESS_TOKEN_HEADER,
		"help": (
			"Products and customers pulled from the Admin REST API; orders arrive as webhooks. Set "
			"Auth Type API Key Header with your app's Admin API access token as API Key (the header "
			"is X-Shopify-Access-Token). Each product's available stock is set whenever the item's "
			"stock moves in ERPNext, at the shop's location (a shop with several locations: one stock "
			"rule per location, with its Stock Warehouses and a field map row location_id, Constant "
			"the location's id); its price follows the item's price in the price list "
			f"{SHOP_PRICE_LIST}; an order cancelled in ERPNext is cancelled at the shop, a "
			"completed or closed one is closed there."
		),
		"pull": [
			{
				"doctype": "Item",
				"list_path": f"{shopify.API}/products.json",
				"pagination": "Link Header",
				"records_path": "products",
				"since_param": "updated_at_min",
				"id_field": "id",
				"modified_field": "updated_at",
				"map": SHOPIFY_ITEM,
			},
			{
				"doctype": "Customer",
				"list_path": f"{shopify.API}/customers.json",
				"pagination": "Link Header",
				"records_path": "customers",
				"since_param": "updated_at_min",
				"id_field": "id",
				"modified_field": "updated_at",
				"map": SHOPIFY_CUSTOMER,
			},
		],
		"push": [
			{
				"doctype": "Item",
				"events": ["on_stock_change"],
				"target": shopify.INVENTORY_SET_PATH,
				"map": SHOPIFY_STOCK,
			},
			{
				"doctype": "Item Price",
				"events": ["on_update"],
				"condition": SHOP_PRICE_CONDITION,
				"target": shopify.VARIANT_PATH,
				"map": SHOPIFY_PRICE,
			},
			{
				"doctype": "Sales Order",
				"events": ["on_status_change", "on_cancel"],
				"target": shopify.ORDER_ACTION_PATH,
				"map": SHOPIFY_ORDER_STATUS,
			},
		],
		"inbound": [{"doctype": "Sales Order", "id_path": "id", "map": SHOPIFY_ORDER}],
		"receive": {
			"doctype": "Sales Order",
			"scheme": "HMAC-SHA256 Header",
			"header": "X-Shopify-Hmac-Sha256",
		},
	},
	"Stripe Payments": {
		"connector_type": "Stripe",
		"help": (
			"Stripe payments become submitted Payment Entries against the Sales Invoice (or Sales Order) "
			"they name. In Stripe (Developers > Webhooks > Add endpoint) enter this connector's receive "
			"URL, {receive_url}, and choose the events payment_intent.succeeded, charge.succeeded, "
			"refund.created and refund.updated; copy the endpoint's Signing secret (whsec_...) into "
			"Receive Secret. Your checkout puts the invoice's name in the payment's metadata as "
			"erpnext_invoice (or the order's as erpnext_order). Set Payment Account (where Stripe's "
			"money is booked), Fee Account (Stripe's fee, when the payload carries it) and an API User "
			"with the roles Connect API User and Accounts User. A payment that names nothing, or is in "
			"another currency than its invoice, waits in Parked Payments for you to allocate."
		),
		"base_url": "https://api.stripe.com",
		"receive": {"doctype": "Payment Entry", "scheme": "Stripe"},
	},
	"Razorpay Payments": {
		"connector_type": "Razorpay",
		"help": (
			"Razorpay payments become submitted Payment Entries against the Sales Invoice (or Sales "
			"Order) they name. In Razorpay (Accounts & Settings > Webhooks > Add New Webhook) enter this "
			"connector's receive URL, {receive_url}, type a secret of your own and choose the events "
			"payment.captured and refund.processed; put the same secret in Receive Secret. Your checkout "
			"puts the invoice's name in the payment's notes as erpnext_invoice (or the order's as "
			"erpnext_order). Set Payment Account (where Razorpay's money is booked), Fee Account "
			"(Razorpay's fee and its tax) and an API User with the roles Connect API User and Accounts "
			"User. A payment that names nothing, or is in another currency than its invoice, waits in "
			"Parked Payments for you to allocate."
		),
		"base_url": "https://api.razorpay.com",
		"receive": {"doctype": "Payment Entry", "scheme": "Razorpay"},
	},
}


def field_map_rows(field_map) -> list[dict]:
	"""Sync Field Map rows for a preset's map (None: no map, records use ERPNext field names)."""
	return [
		{"erpnext_field": f, "external_path": path, "transform": transform, "transform_option": option}
		for f, path, transform, option in field_map or []
	]
