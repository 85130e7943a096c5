"""What a POS terminal charged is what gets booked (or the difference is flagged), loyalty points
and coupons used offline, and the feed a terminal sells from: its profile's item and customer
groups, naming, variants, batches and serial numbers. In a real site; the sales stay in it (named
"_Test POS …"), the terminals, ledger rows, rules and coupons are removed."""

import frappe

from erp_connect.services.pos import applier, ledger
from erp_connect.services.pos.totals import BOOK_ERPNEXT, BOOK_PAID
from erp_connect.testing.base import TEST_PREFIX
from erp_connect.testing.pos import WALK_IN, WAREHOUSE, PosTestCase, sale_op, stock_item
from erp_connect.testing.pos_paid import (
	coupon,
	discount_rule,
	ensure_profile_with,
	ensure_vat_template,
	group,
	loyal_customer,
	naming_rule,
	tax_account,
	tracked_item,
)


class PaidTestCase(PosTestCase):
	def terminal_with(self, total_policy: str = BOOK_PAID, profile: str | None = None, **fields):
		term = self.make_terminal()
		term.update({"total_policy": total_policy, "pos_profile": profile or self.profile, **fields})
		term.save()
		frappe.db.commit()
		return term

	def sell(self, term, item: str, **data) -> tuple[dict, "frappe.Document | None"]:
		"""Push and apply one sale of ``item`` at 100 (``data`` overrides the sale's data)."""
		op = sale_op(frappe.generate_hash(length=16), WALK_IN, item)
		op["data"].update(data)
		return self.apply_op(term, op)

	def apply_op(self, term, op: dict) -> tuple[dict, "frappe.Document | None"]:
		[result] = ledger.push(term, [op])["results"]
		self.assertEqual(result["status"], "accepted", result)
		frappe.db.commit()
		applier.apply(term.name)
		frappe.db.rollback()
		row = frappe.get_all(
			"POS Operation",
			{"terminal": term.name, "client_id": op["client_id"]},
			[
				"name",
				"status",
				"error",
				"flag",
				"reference_name",
				"paid_total",
				"erpnext_total",
				"total_differs",
				"total_difference",
			],
		)[0]
		invoice = frappe.get_doc("Sales Invoice", row.reference_name) if row.reference_name else None
		return row, invoice

	def review_tasks(self, row) -> list:
		return frappe.get_all(
			"ToDo", {"reference_type": "POS Operation", "reference_name": row.name}, pluck="description"
		)


class TestWhatWasPaid(PaidTestCase):
	"""Each cause of a difference under each policy."""

	def assert_booked_as_paid(self, row, invoice, expected: float, cause: str):
		self.assertEqual(row.status, "Applied", row.error or row.flag)
		self.assertEqual(invoice.grand_total, 100)
		self.assertEqual(invoice.outstanding_amount, 0)
		self.assertEqual((row.paid_total, row.erpnext_total, row.total_differs), (100, expected, 1))
		self.assertIn(cause, row.total_difference)
		self.assertEqual(self.review_tasks(row), [])

	def assert_booked_at_erpnext_price(self, row, invoice, expected: float, cause: str):
		self.assertEqual(row.status, "Flagged", row.error)
		self.assertEqual(invoice.grand_total, expected)
		self.assertIn(cause, row.flag)
		self.assertIn("paid $ 100.00", row.flag)
		self.assertEqual((row.paid_total, row.erpnext_total, row.total_differs), (100, expected, 1))
		[task] = self.review_tasks(row)
		self.assertIn(cause, task)

	def test_a_pricing_rule_the_terminal_did_not_know(self):
		for policy in (BOOK_PAID, BOOK_ERPNEXT):
			with self.subTest(policy):
				item = stock_item(qty=5)
				discount_rule(item, 10)
				frappe.db.commit()
				row, invoice = self.sell(self.terminal_with(policy), item)
				if policy == BOOK_PAID:
					self.assert_booked_as_paid(row, invoice, 90, "Pricing Rule")
					self.assertEqual(invoice.items[0].pricing_rules or "", "")
				else:
					self.assert_booked_at_erpnext_price(row, invoice, 90, "Pricing Rule")
					self.assertEqual(invoice.change_amount, 10)  # the customer paid 100 in cash

	def test_an_item_price_changed_since_the_terminals_last_pull(self):
		for policy in (BOOK_PAID, BOOK_ERPNEXT):
			with self.subTest(policy):
				item = stock_item(qty=5, rate=100)
				frappe.db.set_value("Item Price", {"item_code": item}, "price_list_rate", 120)
				frappe.db.commit()
				row, invoice = self.sell(
					self.terminal_with(policy),
					item,
					items=[{"item_code": item, "qty": 1, "rate": 100, "price_list_rate": 100}],
				)
				if policy == BOOK_PAID:
					self.assert_booked_as_paid(row, invoice, 120, "Item Price")
					self.assertEqual(invoice.items[0].price_list_rate, 100)
				else:
					self.assert_booked_at_erpnext_price(row, invoice, 120, "Item Price")
					self.assertEqual(invoice.outstanding_amount, 20)  # flagged, not silent

	def test_a_tax_template_the_terminal_charged_no_tax_for(self):
		taxed = ensure_profile_with("Profile Taxed", taxes_and_charges=ensure_vat_template())
		for policy in (BOOK_PAID, BOOK_ERPNEXT):
			with self.subTest(policy):
				item = stock_item(qty=5)
				frappe.db.commit()
				row, invoice = self.sell(self.terminal_with(policy, profile=taxed), item)
				if policy == BOOK_PAID:
					self.assert_booked_as_paid(row, invoice, 110, "taxes")
					# the VAT is inside what was paid
					self.assertEqual([t.included_in_print_rate for t in invoice.taxes], [1])
					self.assertAlmostEqual(invoice.taxes[0].tax_amount, 9.09)
				else:
					self.assert_booked_at_erpnext_price(row, invoice, 110, "taxes")
					self.assertEqual(invoice.taxes[0].tax_amount, 10)

	def test_taxes_listed_by_the_terminal_are_booked_as_charged(self):
		taxed = ensure_profile_with("Profile Taxed", taxes_and_charges=ensure_vat_template())
		item = stock_item(qty=5)
		frappe.db.commit()
		row, invoice = self.sell(
			self.terminal_with(BOOK_ERPNEXT, profile=taxed),
			item,
			taxes=[{"account_head": tax_account(), "amount": 10, "description": "VAT 10%"}],
			payments=[{"mode_of_payment": "Cash", "amount": 110}],
		)
		self.assertEqual(row.status, "Applied", row.error or row.flag)
		self.assertEqual((row.paid_total, row.erpnext_total, row.total_differs), (110, 110, 0))
		self.assertEqual(invoice.grand_total, 110)
		self.assertEqual([(t.charge_type, t.tax_amount) for t in invoice.taxes], [("Actual", 10)])

	def test_a_discount_given_at_the_till_is_booked_under_both_policies(self):
		item = stock_item(qty=10)
		frappe.db.commit()
		discounted = {
			"items": [
				{"item_code": item, "qty": 2, "rate": 90, "price_list_rate": 100, "discount_percentage": 10}
			],
			"payments": [{"mode_of_payment": "Cash", "amount": 180}],
		}
		for policy in (BOOK_PAID, BOOK_ERPNEXT):
			with self.subTest(policy):
				row, invoice = self.sell(self.terminal_with(policy), item, **discounted)
				self.assertEqual(row.status, "Applied", row.error or row.flag)
				self.assertEqual((row.paid_total, row.erpnext_total, row.total_differs), (180, 180, 0))
				self.assertEqual(invoice.grand_total, 180)
				line = invoice.items[0]
				self.assertEqual((line.price_list_rate, line.discount_percentage, line.rate), (100, 10, 90))
		# the same discount on a price that rose since: ERPNext's total is 2 x 90 % of 120
		frappe.db.set_value("Item Price", {"item_code": item}, "price_list_rate", 120)
		frappe.db.commit()
		row, invoice = self.sell(self.terminal_with(BOOK_ERPNEXT), item, **discounted)
		self.assertEqual((row.status, row.erpnext_total, invoice.grand_total), ("Flagged", 216, 216))

	def test_a_price_for_this_customer_alone_is_not_taken_for_the_list_price(self):
		# the list price is what the terminal charged, but ERPNext prices this customer apart
		item = stock_item(qty=5)
		frappe.get_doc(
			{
				"doctype": "Item Price",
				"item_code": item,
				"price_list": "Standard Selling",
				"customer": WALK_IN,
				"price_list_rate": 80,
			}
		).insert(ignore_permissions=True)
		frappe.db.commit()
		row, invoice = self.sell(self.terminal_with(BOOK_ERPNEXT), item)
		self.assertEqual((row.status, row.erpnext_total, invoice.grand_total), ("Flagged", 80, 80), row.error)

	def test_a_sale_at_erpnexts_own_price_notes_both_totals_and_nothing_else(self):
		item = stock_item(qty=5)
		frappe.db.commit()
		row, invoice = self.sell(self.terminal_with(BOOK_ERPNEXT), item)
		self.assertEqual(row.status, "Applied", row.error or row.flag)
		self.assertEqual((row.paid_total, row.erpnext_total, row.total_differs), (100, 100, 0))
		self.assertEqual(invoice.grand_total, 100)
		self.assertEqual(self.review_tasks(row), [])


class TestLoyaltyAndCoupons(PaidTestCase):
	def test_points_the_customer_has_are_redeemed_as_erpnext_redeems_them(self):
		item, who = stock_item(qty=5), loyal_customer()
		frappe.db.commit()
		term = self.terminal_with()
		row, _ = self.sell(term, item, customer=who)  # 100.00 spent: 100 points
		self.assertEqual(row.status, "Applied", row.error or row.flag)
		row, invoice = self.sell(
			term, item, customer=who, loyalty_points=30, payments=[{"mode_of_payment": "Cash", "amount": 70}]
		)
		self.assertEqual(row.status, "Applied", row.error or row.flag)
		self.assertEqual((invoice.redeem_loyalty_points, invoice.loyalty_points), (1, 30))
		self.assertEqual(
			(invoice.grand_total, invoice.loyalty_amount, invoice.outstanding_amount), (100, 30, 0)
		)
		redeemed = frappe.get_all(
			"Loyalty Point Entry",
			{"invoice": invoice.name, "loyalty_points": ("<", 0)},
			pluck="loyalty_points",
		)
		self.assertEqual(redeemed, [-30])

	def test_points_are_refused_with_the_reason_and_nothing_is_written(self):
		item, who = stock_item(qty=5), loyal_customer()
		frappe.db.commit()
		term = self.terminal_with()
		self.sell(term, item, customer=who)  # 100 points
		row, invoice = self.sell(
			term, item, customer=who, loyalty_points=180, payments=[{"mode_of_payment": "Cash", "amount": 20}]
		)
		self.assertEqual((row.status, invoice), ("Failed", None))
		self.assertIn("redeems 180 loyalty points", row.error)
		self.assertIn("has 100", row.error)
		row, invoice = self.sell(term, item, loyalty_points=5)  # the walk-in customer has no program
		self.assertEqual((row.status, invoice), ("Failed", None))
		self.assertIn("not in a loyalty program", row.error)
		self.assertEqual(len(self.invoices_of(term)), 1)

	def test_a_valid_coupon_is_booked_and_counted_and_a_bad_one_refused(self):
		item = stock_item(qty=10)
		rule = discount_rule(item, 10, coupon_based=1)
		once = coupon(rule, maximum_use=1)
		expired = coupon(rule, valid_upto=frappe.utils.add_days(frappe.utils.nowdate(), -1))
		frappe.db.commit()
		term = self.terminal_with(BOOK_ERPNEXT)
		with_coupon = {
			"items": [
				{"item_code": item, "qty": 1, "rate": 90, "price_list_rate": 100, "discount_percentage": 10}
			],
			"payments": [{"mode_of_payment": "Cash", "amount": 90}],
		}
		row, invoice = self.sell(term, item, coupon_code=once, **with_coupon)
		self.assertEqual(row.status, "Applied", row.error or row.flag)
		self.assertEqual((invoice.grand_total, row.total_differs), (90, 0))
		self.assertEqual(frappe.db.get_value("Coupon Code", {"coupon_code": once}, "used"), 1)
		for code, reason in ((once, "used up"), (expired, "expired"), ("NO-SUCH-CODE", "does not exist")):
			with self.subTest(reason):
				row, invoice = self.sell(term, item, coupon_code=code, **with_coupon)
				self.assertEqual((row.status, invoice), ("Failed", None))
				self.assertIn(reason, row.error)
		self.assertEqual(frappe.db.get_value("Coupon Code", {"coupon_code": once}, "used"), 1)
		self.assertEqual(len(self.invoices_of(term)), 1)


class TestBatchesAndSerials(PaidTestCase):
	def test_serial_numbers_sold_are_booked_against_and_unknown_ones_refused(self):
		numbers = [f"{TEST_PREFIX}SN-{frappe.generate_hash(length=8)}".replace(" ", "") for _ in range(3)]
		item, _ = tracked_item("serial", numbers=numbers)
		frappe.db.commit()
		term = self.terminal_with()
		row, invoice = self.sell(
			term,
			item,
			items=[{"item_code": item, "qty": 2, "rate": 100, "serial_no": numbers[:2]}],
			payments=[{"mode_of_payment": "Cash", "amount": 200}],
		)
		self.assertEqual(row.status, "Applied", row.error or row.flag)
		self.assertEqual(invoice.grand_total, 200)
		self.assertEqual(
			[frappe.db.get_value("Serial No", n, "warehouse") for n in numbers], [None, None, WAREHOUSE]
		)
		for serials, reason in (
			([numbers[0]], "is not in"),  # sold already
			(["NO-SUCH-SERIAL"], "NO-SUCH-SERIAL of"),
		):
			with self.subTest(reason):
				row, invoice = self.sell(
					term, item, items=[{"item_code": item, "qty": 1, "rate": 100, "serial_no": serials}]
				)
				self.assertEqual((row.status, invoice), ("Failed", None))
				self.assertIn(reason, row.error)
		row, _ = self.sell(term, item)  # no serial named
		self.assertIn("must name the ones sold", row.error)
		self.assertEqual(frappe.db.get_value("Serial No", numbers[2], "warehouse"), WAREHOUSE)

	def test_a_batch_sold_is_booked_against_at_the_rate_charged_and_an_unknown_one_refused(self):
		from erpnext.stock.doctype.batch.batch import get_batch_qty

		item, batch = tracked_item("batch", batch_qty=5)
		frappe.db.commit()
		term = self.terminal_with()
		row, invoice = self.sell(
			term,
			item,
			items=[{"item_code": item, "qty": 2, "rate": 95, "price_list_rate": 100, "batch_no": batch}],
			payments=[{"mode_of_payment": "Cash", "amount": 190}],
		)
		self.assertEqual(row.status, "Applied", row.error or row.flag)
		self.assertEqual((invoice.items[0].rate, invoice.grand_total), (95, 190))
		self.assertEqual(get_batch_qty(batch_no=batch, warehouse=WAREHOUSE, item_code=item), 3)
		for line, reason in (
			({"batch_no": "NO-SUCH-BATCH"}, "batch NO-SUCH-BATCH"),
			({"batch_no": batch, "qty": 4}, "has 3.0"),
			({}, "must name the batch"),
		):
			with self.subTest(reason):
				row, invoice = self.sell(
					term, item, items=[{"item_code": item, "qty": 1, "rate": 100, **line}]
				)
				self.assertEqual((row.status, invoice), ("Failed", None))
				self.assertIn(reason, row.error)


class TestNaming(PaidTestCase):
	def test_document_naming_rules_name_the_sales_of_their_profile(self):
		named = ensure_profile_with("Profile Named")
		tag = frappe.generate_hash(length=5).upper()
		sales_rule = naming_rule(f"ECTEST{tag}-.", pos_profile=named)
		returns_rule = naming_rule(f"ECTEST{tag}R-.", priority=1, pos_profile=named, is_return=1)
		item = stock_item(qty=10)
		frappe.db.commit()
		term = self.terminal_with(profile=named)
		first = sale_op(frappe.generate_hash(length=16), WALK_IN, item)
		second = sale_op(frappe.generate_hash(length=16), WALK_IN, item)
		refund = sale_op(frappe.generate_hash(length=16), WALK_IN, item, qty=-1)
		refund["data"].update(is_return=1, return_against_client_id=first["client_id"])
		refund["data"]["payments"][0]["amount"] = -100
		ledger.push(term, [first, second, refund])
		frappe.db.commit()
		applier.apply(term.name)
		names = {r.client_id: (r.status, r.reference_name, r.error) for r in self.ledger(term)}
		self.assertEqual(names[first["client_id"]][:2], ("Applied", f"ECTEST{tag}-00001"))
		self.assertEqual(names[second["client_id"]][:2], ("Applied", f"ECTEST{tag}-00002"))
		self.assertEqual(names[refund["client_id"]][:2], ("Applied", f"ECTEST{tag}R-00001"), names)
		self.assertEqual(frappe.db.get_value("Document Naming Rule", sales_rule, "counter"), 2)
		self.assertEqual(frappe.db.get_value("Document Naming Rule", returns_rule, "counter"), 1)
		# another profile's sales keep the default series
		_, other = self.sell(self.terminal_with(), item)
		self.assertFalse(other.name.startswith("ECTEST"))


class TestFeedScope(PaidTestCase):
	def pull_pass(self, term, cursor=None) -> tuple[dict, list, str]:
		seen, deleted = {}, []
		for _ in range(100):
			page = self.call("pull", terminal=term.name, cursor=cursor, limit=500).json()["message"]
			seen.update({(r["type"], r["key"]): r["data"] for r in page["records"]})
			deleted += [(d["type"], d["key"]) for d in page["deleted"]]
			cursor = page["cursor"]
			if not page["has_more"]:
				return seen, deleted, cursor
		raise AssertionError("the feed did not end")

	def test_the_profiles_item_and_customer_groups_filter_the_feed_and_leaving_them_removes(self):
		shop, below, elsewhere = group("Item Group", "Shop"), None, group("Item Group", "Elsewhere")
		below = group("Item Group", "Shop Sub", parent=shop)
		members, others = group("Customer Group", "Members"), group("Customer Group", "Others")
		in_shop, in_sub, outside = stock_item(qty=3), stock_item(qty=3), stock_item(qty=3)
		for code, item_group in ((in_shop, shop), (in_sub, below), (outside, elsewhere)):
			frappe.db.set_value("Item", code, "item_group", item_group)
		self.addCleanup(self.reset_groups, [in_shop, in_sub, outside])
		member = self.customer_in(members)
		stranger = self.customer_in(others)
		profile = ensure_profile_with(
			"Profile Grouped",
			item_groups=[{"item_group": shop}],
			customer_groups=[{"customer_group": members}],
		)
		frappe.db.commit()
		term = self.terminal_with(profile=profile)
		seen, _, cursor = self.pull_pass(term)
		items = {k for t, k in seen if t == "item"}
		self.assertIn(in_shop, items)
		self.assertIn(in_sub, items)  # a group below the profile's groups
		self.assertNotIn(outside, items)
		self.assertNotIn(("stock", outside), seen)
		self.assertFalse([d for d in seen.values() if d.get("item_code") == outside])
		customers = {k for t, k in seen if t == "customer"}
		self.assertIn(member, customers)
		self.assertIn(WALK_IN, customers)  # the profile's default customer, whatever its group
		self.assertNotIn(stranger, customers)

		# an item leaves the groups, another enters them (with its price and stock), a customer moves
		frappe.get_doc("Item", in_shop).update({"item_group": elsewhere}).save()
		frappe.get_doc("Item", outside).update({"item_group": shop}).save()
		frappe.get_doc("Customer", member).update({"customer_group": others}).save()
		frappe.db.commit()
		seen, deleted, _ = self.pull_pass(term, cursor)
		self.assertIn(("item", in_shop), deleted)
		self.assertIn(("customer", member), deleted)
		self.assertNotIn(("item", in_shop), seen)
		self.assertIn(("item", outside), seen)
		self.assertEqual(seen[("stock", outside)]["actual_qty"], 3)
		self.assertTrue(any(t == "price" and d["item_code"] == outside for (t, _), d in seen.items()))

		# the profile's groups change: the terminal starts again
		frappe.get_doc("POS Profile", profile).update({"item_groups": []}).save()
		frappe.db.commit()
		page = self.call("pull", terminal=term.name, cursor=cursor).json()["message"]
		self.assertTrue(page["full_resync_required"])

	def test_variants_come_with_their_attributes_and_their_template_does_not(self):
		from erpnext.controllers.item_variant import create_variant

		attribute = f"{TEST_PREFIX}Size {frappe.generate_hash(length=4)}"
		frappe.get_doc(
			{
				"doctype": "Item Attribute",
				"attribute_name": attribute,
				"item_attribute_values": [{"attribute_value": "Small", "abbr": "S"}],
			}
		).insert(ignore_permissions=True)
		template = frappe.get_doc(
			{
				"doctype": "Item",
				"item_code": f"{TEST_PREFIX}Shirt {frappe.generate_hash(length=6)}",
				"item_group": "All Item Groups",
				"stock_uom": "Nos",
				"has_variants": 1,
				"attributes": [{"attribute": attribute}],
			}
		).insert(ignore_permissions=True)
		variant = create_variant(template.name, {attribute: "Small"})
		variant.insert(ignore_permissions=True)
		frappe.db.commit()
		self.addCleanup(self.delete_items, [variant.name, template.name], attribute)
		seen, _, _ = self.pull_pass(self.terminal_with())
		self.assertNotIn(("item", template.name), seen)
		data = seen[("item", variant.name)]
		self.assertEqual(data["variant_of"], template.name)
		self.assertEqual(data["attributes"], [{"attribute": attribute, "value": "Small"}])

	def test_batch_and_serial_items_come_with_what_the_warehouse_holds(self):
		numbers = [f"ECTESTSN{frappe.generate_hash(length=8)}" for _ in range(2)]
		serial_item, _ = tracked_item("serial", numbers=numbers)
		batch_item, batch = tracked_item("batch", batch_qty=4)
		frappe.db.commit()
		seen, _, _ = self.pull_pass(self.terminal_with())
		self.assertEqual(seen[("item", serial_item)]["has_serial_no"], 1)
		self.assertEqual(sorted(seen[("stock", serial_item)]["serial_nos"]), sorted(numbers))
		self.assertEqual(seen[("item", batch_item)]["has_batch_no"], 1)
		self.assertEqual(
			[(b["batch_no"], b["qty"]) for b in seen[("stock", batch_item)]["batches"]], [(batch, 4)]
		)

	def customer_in(self, customer_group: str) -> str:
		return (
			frappe.get_doc(
				{
					"doctype": "Customer",
					"customer_name": f"{TEST_PREFIX}Shopper {frappe.generate_hash(length=6)}",
					"customer_group": customer_group,
					"territory": "All Territories",
				}
			)
			.insert(ignore_permissions=True)
			.name
		)

	def reset_groups(self, items: list[str]) -> None:
		frappe.db.rollback()
		for code in items:
			frappe.db.set_value("Item", code, "item_group", "All Item Groups")
		frappe.db.commit()

	def delete_items(self, items: list[str], attribute: str) -> None:
		frappe.db.rollback()
		for code in items:
			frappe.delete_doc("Item", code, force=True, ignore_permissions=True)
		frappe.delete_doc("Item Attribute", attribute, force=True, ignore_permissions=True)
		frappe.db.commit()
