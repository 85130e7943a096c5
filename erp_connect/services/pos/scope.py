"""What a terminal sells and whom it sells to, from its POS Profile: the profile's item groups and
customer groups (each with the groups below it; none listed means all, as in ERPNext's own POS),
sales items only, and variants rather than the templates they come from. Its default customer is
always in scope, whatever its group."""

import datetime

import frappe
from frappe.utils import convert_utc_to_system_timezone
from frappe.utils.nestedset import get_descendants_of


class Scope:
	def __init__(self, item_groups: set | None, customer_groups: set | None, default_customer: str | None):
		self.item_groups = item_groups
		self.customer_groups = customer_groups
		self.default_customer = default_customer
		self._items: list[str] | None = None

	@classmethod
	def of(cls, term) -> "Scope":
		profile = frappe.get_cached_doc("POS Profile", term.pos_profile)
		return cls(
			_with_descendants("Item Group", [g.item_group for g in profile.item_groups]),
			_with_descendants("Customer Group", [g.customer_group for g in profile.customer_groups]),
			profile.customer,
		)

	def signature(self) -> str:
		"""Changes when the groups change: the terminal's cursor then asks for a full resync."""
		return "|".join(
			",".join(sorted(g)) if g is not None else "*" for g in (self.item_groups, self.customer_groups)
		)

	def sells(self, stream: str, row) -> bool:
		if stream == "item":
			return bool(
				row.is_sales_item
				and not row.has_variants
				and (self.item_groups is None or row.item_group in self.item_groups)
			)
		if stream == "customer":
			return (
				self.customer_groups is None
				or row.customer_group in self.customer_groups
				or row.name == self.default_customer
			)
		return True  # prices and stock are read for the items in scope only

	def item_filter(self, field: str) -> list:
		"""A filter on ``field`` to the items in scope (none when every group is)."""
		if self.item_groups is None:
			return []
		if self._items is None:
			self._items = frappe.get_all(
				"Item",
				{"item_group": ("in", list(self.item_groups)), "is_sales_item": 1, "has_variants": 0},
				pluck="name",
			)
		return [[field, "in", self._items or [""]]]

	@staticmethod
	def snapshot_moment(issued: float) -> datetime.datetime:
		"""The cursor's snapshot time as Frappe stamps ``modified``: what changed later may have been
		sent to the terminal before, so leaving the scope is told as a deletion."""
		moment = datetime.datetime.fromtimestamp(issued, datetime.UTC).replace(tzinfo=None)
		return convert_utc_to_system_timezone(moment).replace(tzinfo=None)


def _with_descendants(doctype: str, groups: list[str]) -> set | None:
	if not groups:
		return None
	found = set(groups)
	for group in groups:
		found.update(get_descendants_of(doctype, group))
	return found
