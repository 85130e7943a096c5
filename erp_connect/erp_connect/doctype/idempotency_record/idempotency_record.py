# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe.model.document import Document


class IdempotencyRecord(Document):
	pass


def on_doctype_update():
	frappe.db.add_unique("Idempotency Record", ["connector", "idempotency_key"], "connector_key")
