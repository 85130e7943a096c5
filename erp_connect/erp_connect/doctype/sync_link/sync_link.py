# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe.model.document import Document


class SyncLink(Document):
	pass


def on_doctype_update():
	# one document per external record and connector, found both ways
	frappe.db.add_unique("Sync Link", ["connector", "reference_doctype", "external_id"], "external_record")
	frappe.db.add_index("Sync Link", ["reference_doctype", "reference_name"], "local_document")
