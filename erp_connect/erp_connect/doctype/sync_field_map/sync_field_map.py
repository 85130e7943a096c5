# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

from frappe.model.document import Document


class SyncFieldMap(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		erpnext_field: DF.Data | None
		external_path: DF.Data
		parent: DF.Data
		parentfield: DF.Data
		parenttype: DF.Data
		required: DF.Check
		transform: DF.Literal[
			"None",
			"Value Map",
			"Date Format",
			"Datetime Format",
			"Round",
			"Constant",
			"Template",
			"External ID Link",
		]
		transform_option: DF.SmallText | None
	# end: auto-generated types
