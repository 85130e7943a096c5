# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe import _
from frappe.model.document import Document

from erp_connect.services.common.users import writer_problem


class POSTerminal(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		api_user: DF.Link
		backlog: DF.Int
		booking: DF.Literal["Sales Invoice", "POS Invoice with shifts"]
		company: DF.Link | None
		connector: DF.Link
		enabled: DF.Check
		failed: DF.Int
		flagged: DF.Int
		last_pull_at: DF.Datetime | None
		last_push_at: DF.Datetime | None
		pos_profile: DF.Link
		price_list: DF.Link | None
		stock_policy: DF.Literal["Block", "Accept and Flag", "Accept and Reconcile"]
		terminal_name: DF.Data
		total_policy: DF.Literal["Book what was paid", "Book ERPNext's price and flag the difference"]
		warehouse: DF.Link | None

	# end: auto-generated types
	def validate(self):
		self.validate_profile()
		self.validate_api_user()
		self.validate_shift_booking()

	def validate_profile(self):
		profile = frappe.db.get_value(
			"POS Profile",
			self.pos_profile,
			["disabled", "warehouse", "selling_price_list", "company"],
			as_dict=True,
		)
		if profile.disabled:
			frappe.throw(_("POS Profile {0} is disabled").format(self.pos_profile))
		missing = [
			label
			for label, v in (("Warehouse", profile.warehouse), ("Price List", profile.selling_price_list))
			if not v
		]
		if missing:
			frappe.throw(
				_("POS Profile {0} needs: {1}").format(self.pos_profile, ", ".join(_(m) for m in missing))
			)

	def validate_api_user(self):
		"""The terminal's user writes its sales: the same check as every write path."""
		problem = writer_problem(self.api_user)
		if problem:
			frappe.throw(problem, title=_("API User"))

	def validate_shift_booking(self):
		"""ERPNext closes a shift with the POS Invoices of its profile and user: two terminals with
		shifts of one profile and user would close each other's sales."""
		if self.booking != "POS Invoice with shifts":
			return
		other = frappe.db.get_value(
			"POS Terminal",
			{
				"booking": self.booking,
				"pos_profile": self.pos_profile,
				"api_user": self.api_user,
				"name": ("!=", self.name or ""),
			},
		)
		if other:
			frappe.throw(
				_(
					"POS Terminal {0} already books shifts of POS Profile {1} as {2}: give this one its own API User or POS Profile"
				).format(other, self.pos_profile, self.api_user)
			)
