# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe.model.document import Document


class IdempotencyRecord(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		connector: DF.Link
		expires_at: DF.Datetime | None
		idempotency_key: DF.Data
		request_hash: DF.Data | None
		response: DF.Code | None
		status_code: DF.Int
	# end: auto-generated types


def on_doctype_update():
	frappe.db.add_unique("Idempotency Record", ["connector", "idempotency_key"], "connector_key")
