# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

from frappe.model.document import Document


class SyncRun(Document):
	pass
