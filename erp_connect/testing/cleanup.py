"""What the integration tests commit, and the one clean-up that removes it. Everything a test
makes is named with TEST_PREFIX or hangs on a connector that is, so one table says where to look.
"""

import frappe

from erp_connect.services.push.outbox import clear_rules_cache
from erp_connect.testing.base import TEST_PREFIX

OURS = ("like", TEST_PREFIX + "%")
MOBILE_USERS = ("like", "ec-mobile-%@example.com")  # the people of testing/mobile.py

# ERPNext documents, deleted as documents (their own children go with them; submitted ones are
# cancelled first, and the ledger rows they leave are removed), in this order.
TEST_DOCUMENTS = (
	("Payment Entry", {"party": OURS}),
	("Sales Invoice", {"customer": OURS}),
	("Delivery Note", {"customer_name": OURS}),
	("Sales Order", {"customer_name": OURS}),
	("Quotation", {"party_name": OURS}),  # the CRM tests' won deals (test_crm.py)
	("Sync Import", {"connector": OURS}),  # with its attached files
	("Item", {"item_code": OURS}),
	("Document Naming Rule", {"prefix": ("like", "ECTEST%")}),  # as documents: clears their cache
	("User Permission", {"user": MOBILE_USERS}),  # as documents: Frappe clears its cache of them
	("User", {"name": MOBILE_USERS}),
)

# what a cancelled accounting document leaves behind when deleted
LEDGERS = ("GL Entry", "Payment Ledger Entry")


def _our_tracking_events() -> dict:
	notes = frappe.get_all("Delivery Note", {"customer_name": OURS}, pluck="name")
	return {"delivery_note": ("in", notes or [""])}


# Plain rows that point at the test documents, removed before them (a callable gives the filters
# when it runs).
ROWS_OF_TEST_DOCUMENTS = (
	("Shipment Tracking Event", _our_tracking_events),  # the shipping tests' (test_shipping.py)
)

# The app's own records and plain rows, removed with plain deletes (no document hooks) in this
# order, each with the rows of its child tables.
TEST_ROWS = (
	("Parked Payment", {"connector": OURS}),
	("Address", {"address_title": OURS}),
	("Notification Log", {"subject": ("like", "Shipment % to " + TEST_PREFIX + "%")}),
	("Sync Event", {"connector": OURS}),
	("Sync Link", {"connector": OURS}),
	("Sync Conflict", {"connector": OURS}),
	("Idempotency Record", {"connector": OURS}),
	("Inbound Request", {"connector": OURS}),
	("Stream Dead Letter", {"connector": OURS}),
	("Sync Run", {"connector": OURS}),
	("ToDo", {"reference_type": "POS Operation", "description": ("like", "%terminal " + TEST_PREFIX + "%")}),
	("Coupon Code", {"coupon_name": OURS}),  # the POS tests' coupons and pricing rules
	("Pricing Rule", {"title": OURS}),
	("POS Operation", {"terminal": OURS}),
	("POS Terminal", {"connector": OURS}),
	("Pull Rule", {"connector": OURS}),
	("Sync Rule", {"connector": OURS}),
	("Connector", {"name": OURS}),
	("OAuth Bearer Token", {"user": MOBILE_USERS}),
	("OAuth Authorization Code", {"user": MOBILE_USERS}),
	("OAuth Client", {"app_name": OURS}),
	("Activity Log", {"user": MOBILE_USERS}),  # their logins
	("Notification Log", {"subject": OURS}),
	("Notification Log", {"subject": ("like", "Sync Rule SR-%")}),
	("Contact", {"first_name": OURS}),  # the CRM tests' (test_crm.py), with their links
	("Opportunity", {"party_name": OURS}),
	("Customer", {"customer_name": OURS}),  # plain: the pull tests make thousands
	("Item Group", {"item_group_name": OURS}),  # the POS feed tests' groups (their items are gone)
	("Customer Group", {"customer_group_name": OURS}),
	("Deleted Document", {"deleted_name": OURS}),  # tombstones the feed tests read
	# tombstones of the test sales orders (named by a series): their data names a test customer
	(
		"Deleted Document",
		{"deleted_doctype": "Sales Order", "data": ("like", f'%"customer_name": "{TEST_PREFIX}%')},
	),
	(
		"Deleted Document",
		{"deleted_doctype": "Delivery Note", "data": ("like", f'%"customer_name": "{TEST_PREFIX}%')},
	),
)

# people and their User Permissions go without a tombstone
PERMANENTLY = {"User Permission", "User"}


def delete_test_data() -> None:
	frappe.db.rollback()
	for doctype, filters in ROWS_OF_TEST_DOCUMENTS:
		_delete_rows(doctype, filters())
	for doctype, filters in TEST_DOCUMENTS:
		for name in frappe.get_all(doctype, filters, pluck="name"):
			doc = frappe.get_doc(doctype, name)
			if doc.docstatus == 1:
				doc.flags.ignore_links = True
				frappe.db.savepoint("cancel_test_document")
				try:
					doc.cancel()
				except Exception:  # left by an older run whose party is gone: cancelled by hand
					frappe.db.rollback(save_point="cancel_test_document")
					frappe.db.set_value(doctype, name, "docstatus", 2, update_modified=False)
			frappe.delete_doc(
				doctype, name, force=True, ignore_permissions=True, delete_permanently=doctype in PERMANENTLY
			)
			for ledger in LEDGERS:
				frappe.db.delete(ledger, {"voucher_type": doctype, "voucher_no": name})
	for doctype, filters in TEST_ROWS:
		_delete_rows(doctype, filters)
	frappe.db.delete("Sessions", {"user": MOBILE_USERS})  # their logins' sessions (a table, no doctype)
	frappe.db.commit()
	clear_rules_cache()


def _delete_rows(doctype: str, filters: dict) -> None:
	names = frappe.get_all(doctype, filters, pluck="name")
	for child in frappe.get_meta(doctype).get_table_fields():
		frappe.db.delete(child.options, {"parenttype": doctype, "parent": ("in", names or [""])})
	frappe.db.delete(doctype, {"name": ("in", names or [""])})
