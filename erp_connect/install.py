"""Install, migrate and uninstall: everything the app creates outside its own doctypes is made
here by idempotent functions (patches reuse them), and removed again on uninstall."""

import frappe

CONNECT_MANAGER = "Connect Manager"
CONNECT_API_USER = "Connect API User"
PAYMENT_REFERENCE_INDEX = "erp_connect_reference_no"
CONNECT_MOBILE_USER = "Connect Mobile User"

ROLES = {
	CONNECT_MANAGER: {"desk_access": 1},
	# external systems log in with API keys only; they never need Desk
	CONNECT_API_USER: {"desk_access": 0},
	# people who sign in to a mobile app (OAuth): a Mobile App connector admits its role's holders
	CONNECT_MOBILE_USER: {"desk_access": 0},
}


def after_install() -> None:
	ensure_roles()
	ensure_indexes()


def after_migrate() -> None:
	ensure_roles()
	ensure_indexes()


def before_uninstall() -> None:
	remove_roles()
	remove_indexes()


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

	for module in (sync_event, sync_link, idempotency_record, inbound_request, pos_operation):
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
		found += [f"{doctype} {d}" for d in frappe.get_all(doctype, {"module": "ERP Connect"}, pluck="name")]
	found += [
		f"Module Def {m}" for m in frappe.get_all("Module Def", {"app_name": "erp_connect"}, pluck="name")
	]
	return found
