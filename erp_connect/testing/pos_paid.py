"""Fixtures for what a POS terminal charged and sold: a tax template and a profile that uses it, a
Pricing Rule, a coupon, a loyalty program, batch and serial items. Persistent fixtures are named
"_Test POS …" and made once; what a test makes that could change another test's prices (pricing
rules, coupons) is named with TEST_PREFIX and cleaned up."""

import frappe

from erp_connect.testing.base import TEST_PREFIX, company
from erp_connect.testing.pos import PREFIX, WALK_IN, WAREHOUSE, ensure_pos_profile, stock_item

VAT_TEMPLATE_TITLE = PREFIX + "VAT 10"


def tax_account() -> str:
	abbr = frappe.get_cached_value("Company", company(), "abbr")
	name = f"{PREFIX}VAT - {abbr}"
	if not frappe.db.exists("Account", name):
		parent = frappe.get_all(
			"Account",
			{"company": company(), "is_group": 1, "account_type": "Tax"},
			pluck="name",
		) or frappe.get_all(
			"Account", {"company": company(), "is_group": 1, "root_type": "Liability"}, pluck="name"
		)
		frappe.get_doc(
			{
				"doctype": "Account",
				"account_name": PREFIX + "VAT",
				"company": company(),
				"parent_account": parent[0],
				"account_type": "Tax",
				"tax_rate": 10,
			}
		).insert(ignore_permissions=True)
	return name


def ensure_vat_template() -> str:
	"""10 % VAT on the net total, added on top of the prices (not included in them)."""
	abbr = frappe.get_cached_value("Company", company(), "abbr")
	name = f"{VAT_TEMPLATE_TITLE} - {abbr}"
	if not frappe.db.exists("Sales Taxes and Charges Template", name):
		frappe.get_doc(
			{
				"doctype": "Sales Taxes and Charges Template",
				"title": VAT_TEMPLATE_TITLE,
				"company": company(),
				"taxes": [
					{
						"charge_type": "On Net Total",
						"account_head": tax_account(),
						"rate": 10,
						"description": "VAT 10%",
					}
				],
			}
		).insert(ignore_permissions=True)
	return name


def ensure_profile_with(name: str, **fields) -> str:
	"""A POS Profile like the test profile, with ``fields`` set."""
	base = frappe.get_doc("POS Profile", ensure_pos_profile())
	full = PREFIX + name
	if not frappe.db.exists("POS Profile", full):
		doc = frappe.copy_doc(base)
		doc.name = full
		doc.update(fields)
		doc.insert(ignore_permissions=True)
	else:
		doc = frappe.get_doc("POS Profile", full)
		doc.update(fields)
		doc.customer = WALK_IN
		doc.save(ignore_permissions=True)
	return full


def discount_rule(item_code: str, percent: float, coupon_based: int = 0) -> str:
	return (
		frappe.get_doc(
			{
				"doctype": "Pricing Rule",
				"title": TEST_PREFIX + "Rule " + frappe.generate_hash(length=6),
				"apply_on": "Item Code",
				"items": [{"item_code": item_code}],
				"selling": 1,
				"company": company(),
				"price_or_product_discount": "Price",
				"rate_or_discount": "Discount Percentage",
				"discount_percentage": percent,
				"coupon_code_based": coupon_based,
			}
		)
		.insert(ignore_permissions=True)
		.name
	)


def coupon(rule: str, maximum_use: int = 0, valid_upto=None) -> str:
	code = (TEST_PREFIX + "CPN" + frappe.generate_hash(length=6)).replace(" ", "")
	frappe.get_doc(
		{
			"doctype": "Coupon Code",
			"coupon_name": TEST_PREFIX + "Coupon " + code,
			"coupon_code": code,
			"coupon_type": "Promotional",
			"pricing_rule": rule,
			"maximum_use": maximum_use,
			"valid_upto": valid_upto,
		}
	).insert(ignore_permissions=True)
	return code


def tracked_item(kind: str, numbers: list[str] | None = None, batch_qty: float = 0, rate: float = 100):
	"""A stock item with batches ("batch": one batch of ``batch_qty`` received) or serial numbers
	("serial": ``numbers`` received); returns (item_code, batch name or serial numbers)."""
	code = stock_item(
		rate=rate,
		kind=kind.title(),
		has_batch_no=1 if kind == "batch" else 0,
		create_new_batch=0,
		has_serial_no=1 if kind == "serial" else 0,
	)
	if kind == "batch":
		batch = frappe.get_doc({"doctype": "Batch", "batch_id": code + "-B1", "item": code}).insert(
			ignore_permissions=True
		)
		_receive_tracked(code, batch_qty, batch_no=batch.name)
		return code, batch.name
	for number in numbers or []:
		frappe.get_doc({"doctype": "Serial No", "serial_no": number, "item_code": code}).insert(
			ignore_permissions=True
		)
	_receive_tracked(code, len(numbers or []), serial_no="\n".join(numbers or []))
	return code, numbers


def _receive_tracked(item_code: str, qty: float, **numbers) -> None:
	if not qty:
		return
	# a minute ago: a sale in the same second as the receipt would come before it (whole seconds)
	moment = frappe.utils.add_to_date(frappe.utils.now_datetime(), minutes=-1)
	entry = frappe.get_doc(
		{
			"doctype": "Stock Entry",
			"company": company(),
			"stock_entry_type": "Material Receipt",
			"set_posting_time": 1,
			"posting_date": moment.date(),
			"posting_time": moment.time(),
			"items": [
				{
					"item_code": item_code,
					"qty": qty,
					"t_warehouse": WAREHOUSE,
					"basic_rate": 10,
					"use_serial_batch_fields": 1,
					**numbers,
				}
			],
		}
	).insert(ignore_permissions=True)
	entry.submit()


def ensure_loyalty_program() -> str:
	"""One point is worth 1.00; every 1.00 spent earns a point."""
	name = PREFIX + "Loyalty"
	if not frappe.db.exists("Loyalty Program", name):
		abbr = frappe.get_cached_value("Company", company(), "abbr")
		frappe.get_doc(
			{
				"doctype": "Loyalty Program",
				"loyalty_program_name": name,
				"loyalty_program_type": "Single Tier Program",
				"company": company(),
				"from_date": frappe.utils.add_days(frappe.utils.nowdate(), -30),
				"conversion_factor": 1,
				"expiry_duration": 365,
				"expense_account": f"Cost of Goods Sold - {abbr}",
				"cost_center": f"Main - {abbr}",
				"collection_rules": [{"tier_name": "Basic", "collection_factor": 1, "min_spent": 0}],
			}
		).insert(ignore_permissions=True)
	return name


def loyal_customer() -> str:
	"""A customer in the test loyalty program (it earns points by buying: ERPNext redeems only
	points earned by sales invoices)."""
	return (
		frappe.get_doc(
			{
				"doctype": "Customer",
				"customer_name": f"{PREFIX}Loyal {frappe.generate_hash(length=6)}",
				"customer_group": "All Customer Groups",
				"territory": "All Territories",
				"loyalty_program": ensure_loyalty_program(),
			}
		)
		.insert(ignore_permissions=True)
		.name
	)


def group(doctype: str, label: str, parent: str | None = None) -> str:
	"""A fresh Item Group or Customer Group below ``parent`` (the root by default)."""
	field = "item_group_name" if doctype == "Item Group" else "customer_group_name"
	root = "All Item Groups" if doctype == "Item Group" else "All Customer Groups"
	parent_field = "parent_item_group" if doctype == "Item Group" else "parent_customer_group"
	return (
		frappe.get_doc(
			{
				"doctype": doctype,
				field: f"{TEST_PREFIX}{label} {frappe.generate_hash(length=6)}",
				parent_field: parent or root,
				"is_group": 1,
			}
		)
		.insert(ignore_permissions=True)
		.name
	)


def naming_rule(prefix: str, priority: int = 0, **conditions) -> str:
	return (
		frappe.get_doc(
			{
				"doctype": "Document Naming Rule",
				"document_type": "Sales Invoice",
				"prefix": prefix,
				"prefix_digits": 5,
				"priority": priority,
				"conditions": [{"field": k, "condition": "=", "value": v} for k, v in conditions.items()],
			}
		)
		.insert(ignore_permissions=True)
		.name
	)
