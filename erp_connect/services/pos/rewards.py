"""Loyalty points and coupon codes used offline, applied as ERPNext applies them or refused up
front with the reason (the operation fails, nothing is written, the terminal shows the reason).

- Points redeemed: the customer must be in a loyalty program of the company and have the points
  at the sale's date; the invoice redeems them (redeem_loyalty_points, loyalty_program,
  loyalty_points), ERPNext turns them into the loyalty amount and books the redemption.
- A coupon: it must exist, be valid on the sale's date, not be used up, and its Pricing Rule be
  enabled. The till charged the coupon's discount, so the rates as charged are booked; the coupon
  is counted as used (a POS Invoice carries it in coupon_code and ERPNext counts it on submit).
"""

import frappe
from frappe import _
from frappe.utils import getdate


class RewardRefused(frappe.ValidationError):
	pass


def apply_rewards(term, invoice, data: dict) -> None:
	if data.get("loyalty_points"):
		_redeem_points(invoice, data["loyalty_points"])
	if data.get("coupon_code"):
		_use_coupon(invoice, data["coupon_code"])


def _redeem_points(invoice, points: int) -> None:
	from erpnext.accounts.doctype.loyalty_program.loyalty_program import (
		get_loyalty_program_details_with_points,
	)

	program = frappe.db.get_value("Customer", invoice.customer, "loyalty_program")
	if not program:
		raise RewardRefused(_("customer {0} is not in a loyalty program").format(invoice.customer))
	if frappe.db.get_value("Loyalty Program", program, "company") != invoice.company:
		raise RewardRefused(_("loyalty program {0} is not of company {1}").format(program, invoice.company))
	details = get_loyalty_program_details_with_points(
		invoice.customer, program, expiry_date=invoice.posting_date, company=invoice.company, silent=True
	)
	if points > (details.loyalty_points or 0):
		raise RewardRefused(
			_("the sale redeems {0} loyalty points, customer {1} has {2}").format(
				points, invoice.customer, details.loyalty_points or 0
			)
		)
	invoice.redeem_loyalty_points = 1
	invoice.loyalty_program = program
	invoice.loyalty_points = points
	invoice.loyalty_amount = points * details.conversion_factor


def _use_coupon(invoice, code: str) -> None:
	name = frappe.db.get_value("Coupon Code", {"coupon_code": code})
	if not name:
		raise RewardRefused(_("coupon code {0} does not exist").format(code))
	coupon = frappe.get_doc("Coupon Code", name)
	day = getdate(invoice.posting_date)
	if coupon.valid_from and getdate(coupon.valid_from) > day:
		raise RewardRefused(_("coupon code {0} is valid from {1}").format(code, coupon.valid_from))
	if coupon.valid_upto and getdate(coupon.valid_upto) < day:
		raise RewardRefused(_("coupon code {0} expired on {1}").format(code, coupon.valid_upto))
	if coupon.maximum_use and coupon.used >= coupon.maximum_use:
		raise RewardRefused(_("coupon code {0} is used up ({1} uses)").format(code, coupon.maximum_use))
	if frappe.db.get_value("Pricing Rule", coupon.pricing_rule, "disable"):
		raise RewardRefused(_("coupon code {0}: its pricing rule is disabled").format(code))
	if invoice.meta.has_field("coupon_code"):
		invoice.coupon_code = name  # POS Invoice: ERPNext validates and counts it on submit
	else:
		from erpnext.accounts.doctype.pricing_rule.utils import update_coupon_code_count

		update_coupon_code_count(name, "used")  # in the apply's transaction: undone if it fails
		invoice.remarks = (invoice.remarks or "") + "\n" + _("Coupon code {0}").format(code)
