import frappe

from erp_connect import install
from erp_connect.testing.base import ConnectTestCase


class TestInstall(ConnectTestCase):
	def test_app_is_installed_with_erpnext(self):
		apps = frappe.get_installed_apps()
		self.assertIn("erpnext", apps)
		self.assertIn("erp_connect", apps)
		self.assertTrue(frappe.db.exists("Module Def", "ERP Connect"))
		self.assertTrue(frappe.db.table_exists("Connector"))

	def test_roles_exist_with_the_right_desk_access(self):
		self.assertEqual(frappe.db.get_value("Role", install.CONNECT_MANAGER, "desk_access"), 1)
		self.assertEqual(frappe.db.get_value("Role", install.CONNECT_API_USER, "desk_access"), 0)

	def test_ensure_roles_is_idempotent(self):
		install.ensure_roles()
		install.ensure_roles()
		for role in install.ROLES:
			self.assertEqual(frappe.db.count("Role", {"name": role}), 1)

	def test_uninstall_hook_removes_roles_and_their_assignments_and_install_restores_them(self):
		user = frappe.get_doc("User", "Administrator")
		user.add_roles(install.CONNECT_MANAGER)
		install.remove_roles()
		self.assertFalse(frappe.db.exists("Role", install.CONNECT_MANAGER))
		self.assertFalse(frappe.db.exists("Has Role", {"role": install.CONNECT_MANAGER}))
		self.assertEqual(
			[x for x in install.leftovers() if x.startswith("Role")], [], "roles left after uninstall hook"
		)
		install.ensure_roles()
		self.assertTrue(frappe.db.exists("Role", install.CONNECT_MANAGER))

	def test_migrate_restores_the_outbox_indexes(self):
		from erp_connect.erp_connect.doctype.sync_event.sync_event import (
			DOCUMENT_INDEX,
			RULE_UNFINISHED_INDEX,
			UNFINISHED_INDEX,
		)

		for index in (UNFINISHED_INDEX, RULE_UNFINISHED_INDEX):
			frappe.db.sql_ddl(f"alter table `tabSync Event` drop index {index}")
		install.after_migrate()
		indexes = {row.Key_name for row in frappe.db.sql("show index from `tabSync Event`", as_dict=True)}
		self.assertLessEqual({UNFINISHED_INDEX, RULE_UNFINISHED_INDEX, DOCUMENT_INDEX}, indexes)
