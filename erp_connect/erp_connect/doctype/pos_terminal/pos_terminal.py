# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe import _
from frappe.model.document import Document

from erp_connect.services.common.users import writer_problem


class POSTerminal(Document):
	def validate(self):
		self.validate_profile()
		self.validate_api_user()

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
