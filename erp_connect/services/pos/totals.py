"""What the customer paid is the truth: a terminal charged prices, discounts and taxes offline, and
ERPNext may compute another total for the same sale now (a Pricing Rule, an Item Price changed
since the terminal's last pull, a tax template). The booking code calls ``match_what_was_paid`` on
the invoice it built (a Sales Invoice or a POS Invoice, lines in the sale's order) before insert:

- the invoice is set to what was charged: pricing rules ignored, each line's rate, list price and
  discount as the terminal had them, its taxes as "Actual" rows of the amounts it listed - or,
  when it listed none, the profile's tax template included in the prices it charged;
- ERPNext's own total is computed on a copy, as a person entering the sale in Desk would get it;
- when the two differ, the terminal's policy decides: book what was paid (the difference is noted
  on the POS Operation, "Total Differs"), or book ERPNext's price and flag the operation with a
  ToDo for an Accounts Manager. Never a silent outstanding amount, never a refused sale.
"""

import frappe
from erpnext.accounts.doctype.pricing_rule.utils import get_applied_pricing_rules
from frappe import _
from frappe.utils import flt, fmt_money, getdate

from erp_connect.engine import pos_rules
from erp_connect.services.pos.review import review_task

BOOK_PAID = "Book what was paid"
BOOK_ERPNEXT = "Book ERPNext's price and flag the difference"
TOLERANCE = 0.005  # amounts are compared to the cent
_RATE_FIELDS = ("rate", "price_list_rate", "discount_percentage", "discount_amount", "margin_rate_or_amount")


def match_what_was_paid(term, invoice, data: dict, op) -> str | None:
	"""Set ``invoice`` to what the terminal charged, or to ERPNext's price under the flagging
	policy; note both totals on the operation. Returns the flag to record, or None."""
	profile = frappe.get_cached_doc("POS Profile", invoice.pos_profile)
	paid = pos_rules.charged_total(data)
	if data.get("is_return"):  # a refund books what was refunded (insert computes its totals)
		_as_charged(invoice, data, profile, compute=False)
		_note(op, paid, None, "")
		return None
	if _erpnext_would_charge_the_same(invoice, data, profile):
		_as_charged(invoice, data, profile, compute=False)  # insert computes the totals
		_note(op, paid, paid, "")
		return None
	erpnext = frappe.copy_doc(invoice)
	_as_erpnext_would(erpnext, data, profile)
	_as_charged(invoice, data, profile)
	expected = flt(erpnext.grand_total, 2)
	if abs(expected - paid) <= TOLERANCE:
		_note(op, paid, expected, "")
		return None
	why = "; ".join(_reasons(erpnext, data)) or _("ERPNext computes another total")
	flagging = term.get("total_policy") == BOOK_ERPNEXT
	# a POS Invoice must be paid in full: a higher ERPNext price is flagged, the paid one booked
	book_erpnext = flagging and not (invoice.doctype == "POS Invoice" and expected > paid)
	if book_erpnext:
		_as_erpnext_would(invoice, data, profile)
	elif abs(flt(invoice.grand_total, 2) - paid) > TOLERANCE:
		# e.g. a template row that cannot be inside a price: the booking is not what was paid
		flagging = True
		why += "; " + _("booked {0}").format(_money(invoice.grand_total, invoice))
	_note(op, paid, expected, why)
	if not flagging:
		return None
	flag = _("ERPNext's total {0}, paid {1} (difference {2}): {3}").format(
		_money(expected, invoice), _money(paid, invoice), _money(expected - paid, invoice), why
	)
	review_task(
		"Accounts Manager",
		"POS Operation",
		op.name,
		_("Review the price of POS sale {0} (terminal {1}): {2}").format(op.client_id, term.name, flag),
	)
	return flag


def _erpnext_would_charge_the_same(invoice, data: dict, profile) -> bool:
	"""Whether ERPNext's price is what the terminal charged, known without pricing the sale again
	(which costs as much as booking it): no taxes listed and no tax template, no selling Pricing
	Rule that could apply, and each line's one plain Item Price (valid on the sale's date, for no
	customer or batch, in the stock unit and the company's currency) is the list price the terminal knew, its rate that price less the
	till's discount. Anything else is priced again in full."""
	if data.get("taxes") or profile.taxes_and_charges:
		return False
	if not profile.ignore_pricing_rule and frappe.db.exists("Pricing Rule", {"disable": 0, "selling": 1}):
		return False
	currency = frappe.get_cached_value("Company", invoice.company, "default_currency")
	customer_currency = frappe.get_cached_value("Customer", invoice.customer, "default_currency")
	if customer_currency not in (None, "", currency):
		return False
	codes = [line["item_code"] for line in data["items"]]
	prices: dict[str, list] = {}
	for price in frappe.get_all(
		"Item Price",
		{"price_list": invoice.selling_price_list, "item_code": ("in", codes)},
		[
			"item_code",
			"price_list_rate",
			"uom",
			"customer",
			"batch_no",
			"valid_from",
			"valid_upto",
			"currency",
		],
	):
		prices.setdefault(price.item_code, []).append(price)
	stock_uoms = dict(frappe.get_all("Item", {"name": ("in", codes)}, ["name", "stock_uom"], as_list=True))
	for line in data["items"]:
		found = prices.get(line["item_code"]) or []
		if len(found) != 1:
			return False
		price, stock_uom = found[0], stock_uoms.get(line["item_code"])
		if price.customer or price.batch_no or not _valid_on(price, getdate(invoice.posting_date)):
			return False
		if price.currency != currency or (price.uom or stock_uom) != stock_uom:
			return False
		if line.get("uom") not in (None, stock_uom):
			return False
		known = line.get("price_list_rate", line["rate"])
		percentage, amount = pos_rules.till_discount(line)
		if abs(flt(price.price_list_rate) - known) > TOLERANCE:
			return False
		if abs(known * (1 - percentage / 100) - amount - line["rate"]) > TOLERANCE:
			return False
	return True


def _valid_on(price, day) -> bool:
	return (not price.valid_from or getdate(price.valid_from) <= day) and (
		not price.valid_upto or getdate(price.valid_upto) >= day
	)


def _as_charged(doc, data: dict, profile, compute: bool = True) -> None:
	"""The lines, discounts and taxes as the terminal charged them."""
	doc.ignore_pricing_rule = 1
	doc.pricing_rules = []
	for item, line in zip(doc.items, data["items"], strict=True):
		item.pricing_rules = None
		item.rate = line["rate"]
		item.price_list_rate = line.get("price_list_rate", line["rate"])
		item.discount_percentage = line.get("discount_percentage", 0)
		item.discount_amount = line.get("discount_amount", 0)
		item.margin_rate_or_amount = 0
	if data.get("taxes"):
		doc.taxes_and_charges = None
		doc.set(
			"taxes",
			[
				{
					"charge_type": "Actual",
					"account_head": tax["account_head"],
					"tax_amount": tax["amount"],
					"description": tax.get("description") or tax["account_head"],
				}
				for tax in data["taxes"]
			],
		)
	else:
		# no taxes listed: the prices charged had the profile's taxes inside them
		doc.taxes_and_charges = profile.taxes_and_charges
		doc.set("taxes", _template_rows(doc))
		for tax in doc.taxes:
			if tax.charge_type == "On Net Total":
				tax.included_in_print_rate = 1
	if compute:
		_compute(doc)


def _as_erpnext_would(doc, data: dict, profile) -> None:
	"""The sale as ERPNext prices it now - its list prices, pricing rules and tax template - with
	the discounts the till gave (ERPNext keeps a discount entered by hand, unless a rule sets one)."""
	doc.ignore_pricing_rule = profile.ignore_pricing_rule
	doc.pricing_rules = []
	for item in doc.items:
		item.pricing_rules = None
		for field in _RATE_FIELDS:
			item.set(field, None)
	doc.taxes_and_charges = profile.taxes_and_charges
	doc.set("taxes", _template_rows(doc))
	doc.set_missing_values(for_validate=True)
	for item, line in zip(doc.items, data["items"], strict=True):
		if not get_applied_pricing_rules(item.pricing_rules):
			percentage, amount = pos_rules.till_discount(line)
			item.discount_percentage, item.discount_amount = percentage, amount
			item.rate = flt(item.price_list_rate) * (1 - percentage / 100) - amount
	doc.calculate_taxes_and_totals()


def _template_rows(doc) -> list[dict]:
	if not doc.taxes_and_charges:
		return []
	from erpnext.controllers.accounts_controller import get_taxes_and_charges

	return get_taxes_and_charges("Sales Taxes and Charges Template", doc.taxes_and_charges)


def _compute(doc) -> None:
	doc.set_missing_values(for_validate=True)
	doc.calculate_taxes_and_totals()


def _reasons(erpnext, data: dict) -> list[str]:
	"""Why ERPNext's total differs, line by line, then the taxes."""
	found = []
	for item, line in zip(erpnext.items, data["items"], strict=True):
		if abs(flt(item.rate) - line["rate"]) <= TOLERANCE:
			continue
		known = line.get("price_list_rate", line["rate"])
		rules = ", ".join(get_applied_pricing_rules(item.pricing_rules))
		if rules:
			found.append(
				_("Pricing Rule {0} prices {1} at {2}, the terminal charged {3}").format(
					rules, item.item_code, _money(item.rate, erpnext), _money(line["rate"], erpnext)
				)
			)
		elif abs(flt(item.price_list_rate) - known) > TOLERANCE:
			found.append(
				_("the Item Price of {0} is now {1}, the terminal knew {2}").format(
					item.item_code, _money(item.price_list_rate, erpnext), _money(known, erpnext)
				)
			)
		else:
			found.append(
				_("ERPNext rates {0} at {1}, the terminal charged {2}").format(
					item.item_code, _money(item.rate, erpnext), _money(line["rate"], erpnext)
				)
			)
	on_top = flt(erpnext.grand_total) - flt(erpnext.total)  # taxes outside the prices
	charged = sum(t["amount"] for t in data.get("taxes") or [])
	if abs(on_top - charged) > TOLERANCE:
		found.append(
			_("taxes: {0} adds {1}, the terminal charged {2} on top").format(
				erpnext.taxes_and_charges or _("ERPNext"), _money(on_top, erpnext), _money(charged, erpnext)
			)
		)
	return found


def _note(op, paid: float, expected: float | None, why: str) -> None:
	"""Both totals on the operation, in the apply's own transaction."""
	values = {"paid_total": paid, "total_differs": 1 if why else 0, "total_difference": why or None}
	if expected is not None:  # a refund is not compared
		values["erpnext_total"] = expected
	frappe.db.set_value("POS Operation", op.name, values, update_modified=False)


def _money(amount, doc) -> str:
	return fmt_money(amount, 2, doc.currency)


def join_flags(*flags: str | None) -> str | None:
	return "; ".join(f for f in flags if f) or None
