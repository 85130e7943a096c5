"""What a POS terminal charged is what gets booked (or the difference is flagged), loyalty points
and coupons used offline, and the feed a terminal sells from: its profile's item and customer
groups, naming, variants, batches and serial numbers. In a real site; the sales stay in it (named
"_Test POS …"), the terminals, ledger rows, rules and coupons are removed."""

import frappe

from erp_connect.services.pos import applier, ledger
from erp_connect.services.pos.totals import BOOK_ERPNEXT, BOOK_PAID
from erp_connect.testing.pos import WALK_IN, sale_op, stock_item
from erp_connect.testing.pos_paid import discount_rule, ensure_profile_with, ensure_vat_template, tax_account
from erp_connect.tests.test_pos import PosTestCase


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
		ledger.push(term, [op])
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
		self.assertEqual(row.status, "Applied", row.error)
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
		self.assertEqual(row.status, "Applied", row.error)
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
				self.assertEqual(row.status, "Applied", row.error)
				self.assertEqual((row.paid_total, row.erpnext_total, row.total_differs), (180, 180, 0))
				self.assertEqual(invoice.grand_total, 180)
				line = invoice.items[0]
				self.assertEqual((line.price_list_rate, line.discount_percentage, line.rate), (100, 10, 90))
		# the same discount on a price that rose since: ERPNext's total is 2 x 90 % of 120
		frappe.db.set_value("Item Price", {"item_code": item}, "price_list_rate", 120)
		frappe.db.commit()
		row, invoice = self.sell(self.terminal_with(BOOK_ERPNEXT), item, **discounted)
		self.assertEqual((row.status, row.erpnext_total, invoice.grand_total), ("Flagged", 216, 216))

	def test_a_sale_at_erpnexts_own_price_notes_both_totals_and_nothing_else(self):
		item = stock_item(qty=5)
		frappe.db.commit()
		row, invoice = self.sell(self.terminal_with(BOOK_ERPNEXT), item)
		self.assertEqual(row.status, "Applied", row.error)
		self.assertEqual((row.paid_total, row.erpnext_total, row.total_differs), (100, 100, 0))
		self.assertEqual(invoice.grand_total, 100)
		self.assertEqual(self.review_tasks(row), [])
