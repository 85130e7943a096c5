"""Install, migrate and uninstall: everything the app creates outside its own doctypes is made
here by idempotent functions (patches reuse them), and removed again on uninstall."""

import frappe

CONNECT_MANAGER = "Connect Manager"
CONNECT_API_USER = "Connect API User"
PAYMENT_REFERENCE_INDEX = "erp_connect_reference_no"
CONNECT_MOBILE_USER = "Connect Mobile User"
MODULES = ("ERP Connect", "ERP Connect Shipping")
SHIPMENT_TRACKER = "Shipment Tracker"  # a carrier's API user: writes Shipment Tracking Events

ROLES = {
	CONNECT_MANAGER: {"desk_access": 1},
	# external systems log in with API keys only; they never need Desk
	CONNECT_API_USER: {"desk_access": 0},
	# people who sign in to a mobile app (OAuth): a Mobile App connector admits its role's holders
	CONNECT_MOBILE_USER: {"desk_access": 0},
	SHIPMENT_TRACKER: {"desk_access": 0},
}

SHIPPING_STATUSES = "\nPre-Transit\nIn Transit\nOut for Delivery\nDelivered\nReturned\nFailed\nUnknown"
# what a carrier's answer and tracking webhooks write onto a Delivery Note (engine/transports/easypost.py,
# services/shipping/tracking.py): read-only for people, set after submit
_SHIPPING = {"read_only": 1, "allow_on_submit": 1, "no_copy": 1, "print_hide": 1}
CUSTOM_FIELDS = {
	"Delivery Note": [
		{
			"fieldname": "ec_shipping_section",
			"fieldtype": "Section Break",
			"label": "Shipping",
			"insert_after": "return_against",  # on the Details tab, under the note's header
			"collapsible": 0,
			"depends_on": "eval:doc.ec_tracking_number || doc.ec_shipping_status",  # once it ships
		},
		{
			"fieldname": "ec_shipping_status",
			"fieldtype": "Select",
			"label": "Shipping Status",
			"options": SHIPPING_STATUSES,
			"insert_after": "ec_shipping_section",
			"in_standard_filter": 1,
			**_SHIPPING,
		},
		{
			"fieldname": "ec_shipping_status_at",
			"fieldtype": "Datetime",
			"label": "Shipping Status Since",
			"insert_after": "ec_shipping_status",
			**_SHIPPING,
		},
		{
			"fieldname": "ec_tracking_number",
			"fieldtype": "Data",
			"label": "Tracking Number",
			"insert_after": "ec_shipping_status_at",
			"search_index": 1,
			**_SHIPPING,
		},
		{
			"fieldname": "ec_shipping_column",
			"fieldtype": "Column Break",
			"insert_after": "ec_tracking_number",
		},
		{
			"fieldname": "ec_label_url",
			"fieldtype": "Data",
			"options": "URL",
			"label": "Shipping Label",
			"insert_after": "ec_shipping_column",
			**_SHIPPING,
		},
		{
			"fieldname": "ec_carrier",
			"fieldtype": "Data",
			"label": "Carrier and Service",
			"insert_after": "ec_label_url",
			**_SHIPPING,
		},
		{
			"fieldname": "ec_shipment_id",
			"fieldtype": "Data",
			"label": "Carrier Shipment ID",
			"insert_after": "ec_carrier",
			**_SHIPPING,
		},
	]
}


def after_install() -> None:
	ensure_roles()
	ensure_indexes()
	ensure_custom_fields()


def after_migrate() -> None:
	ensure_roles()
	ensure_custom_fields()
	ensure_indexes()


def before_uninstall() -> None:
	remove_custom_fields()
	remove_roles()
	remove_indexes()


def ensure_module_defs() -> None:
	"""A Module Def for every module of the app (install makes them; a migrate that adds a module
	needs this before the module's doctypes are synced)."""
	for module in frappe.get_module_list("erp_connect"):
		if not frappe.db.exists("Module Def", module):
			frappe.get_doc(
				{"doctype": "Module Def", "module_name": module, "app_name": "erp_connect"}
			).insert(ignore_permissions=True)


def ensure_custom_fields() -> None:
	from frappe.custom.doctype.custom_field.custom_field import create_custom_fields

	create_custom_fields(CUSTOM_FIELDS, ignore_validate=True, update=True)


def remove_custom_fields() -> None:
	for doctype, fields in CUSTOM_FIELDS.items():
		for field in fields:
			name = frappe.db.get_value("Custom Field", {"dt": doctype, "fieldname": field["fieldname"]})
			if name:
				frappe.delete_doc("Custom Field", name, ignore_permissions=True, force=True)


def ensure_roles() -> None:
	for role_name, settings in ROLES.items():
		if frappe.db.exists("Role", role_name):
			continue
		frappe.get_doc({"doctype": "Role", "role_name": role_name, **settings}).insert(
			ignore_permissions=True
		)


def ensure_indexes() -> None:
	"""Our composite and unique indexes; Frappe adds them only when the doctype itself changes,
	so every migrate makes sure they exist (add_index and add_unique do nothing when they do)."""
	from erp_connect.erp_connect.doctype.idempotency_record import idempotency_record
	from erp_connect.erp_connect.doctype.inbound_request import inbound_request
	from erp_connect.erp_connect.doctype.pos_operation import pos_operation
	from erp_connect.erp_connect.doctype.sync_event import sync_event
	from erp_connect.erp_connect.doctype.sync_link import sync_link
	from erp_connect.erp_connect_shipping.doctype.shipment_tracking_event import shipment_tracking_event

	for module in (
		sync_event,
		sync_link,
		idempotency_record,
		inbound_request,
		pos_operation,
		shipment_tracking_event,
	):
		module.on_doctype_update()
	# payments are recorded once per provider transaction, found by the Payment Entry's
	# Reference No under a locking read: indexed, that read locks one key, not the whole table
	frappe.db.add_index("Payment Entry", ["reference_no"], PAYMENT_REFERENCE_INDEX)


def remove_indexes() -> None:
	"""The index we added to an ERPNext table (our own tables go with their doctypes)."""
	frappe.db.sql_ddl(f"alter table `tabPayment Entry` drop index if exists `{PAYMENT_REFERENCE_INDEX}`")


def remove_roles() -> None:
	for role_name in ROLES:
		# Has Role rows would otherwise keep users pointing at a role that no longer exists
		frappe.db.delete("Has Role", {"role": role_name})
		frappe.db.delete("Custom DocPerm", {"role": role_name})
		if frappe.db.exists("Role", role_name):
			frappe.delete_doc("Role", role_name, ignore_permissions=True, force=True)


def leftovers() -> list[str]:
	"""What of ours is still in the site (used after uninstall to prove it is clean)."""
	found = [f"Role {r}" for r in ROLES if frappe.db.exists("Role", r)]
	for doctype in ("DocType", "Workspace", "Number Card", "Dashboard Chart", "Dashboard Chart Source"):
		found += [
			f"{doctype} {d}" for d in frappe.get_all(doctype, {"module": ("in", MODULES)}, pluck="name")
		]
	found += [
		f"Custom Field {d}.{f['fieldname']}"
		for d, fields in CUSTOM_FIELDS.items()
		for f in fields
		if frappe.db.exists("Custom Field", {"dt": d, "fieldname": f["fieldname"]})
	]
	found += [
		f"Module Def {m}" for m in frappe.get_all("Module Def", {"app_name": "erp_connect"}, pluck="name")
	]
	return found
