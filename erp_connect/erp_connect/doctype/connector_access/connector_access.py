# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

from frappe.model.document import Document


class ConnectorAccess(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		can_cancel: DF.Check
		can_create: DF.Check
		can_read: DF.Check
		can_submit: DF.Check
		can_update: DF.Check
		parent: DF.Data
		parentfield: DF.Data
		parenttype: DF.Data
		reference_doctype: DF.Link
	# end: auto-generated types
