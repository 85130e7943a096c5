# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import json

import frappe

from erp_connect.engine import signing
from erp_connect.install import CONNECT_MANAGER
from erp_connect.testing.base import ConnectTestCase, make_api_user, make_customer
from erp_connect.testing.remote import Reply

SECRET = signing.generate_secret()


class TestSyncRule(ConnectTestCase):
	fake_remote = True

	def setUp(self):
		super().setUp()
		self.connector = self.make_connector(
			signing_secret=SECRET, auth_type="Bearer Token", bearer_token="s3cr3t-token"
		)

	def test_child_table_fields_are_stored_with_list_markers(self):
		rule = self.make_rule(
			self.connector.name, "Sales Invoice", ("on_submit",), [("items.item_code", "lines[].sku")]
		)
		self.assertEqual(rule.field_map[0].erpnext_field, "items[].item_code")

	def test_invalid_rules_are_refused_with_a_reason(self):
		cases = [
			({"events": ("on_submit",)}, "not submittable"),
			({"events": ()}, "at least one event"),
			({"field_map": [("no_such_field", "x")]}, "has no field no_such_field"),
			({"field_map": [("name", "a b")]}, "not a dotted path"),
			({"field_map": [("customer_name", "x", "Round", "two")]}, "number of decimals"),
			({"condition": "doc.customer_name =="}, "not a valid expression"),
			({"condition": '[["customer_type", "="'}, "not a valid expression or JSON"),
			({"doctype": "Sync Event"}, "own doctypes"),
			({"doctype": "Sales Invoice Item"}, "cannot be synced"),
		]
		for overrides, reason in cases:
			with self.subTest(reason=reason):
				kwargs = {"events": ("after_insert",), **overrides}
				with self.assertRaisesRegex(frappe.ValidationError, reason):
					self.make_rule(self.connector.name, kwargs.pop("doctype", "Customer"), **kwargs)

	def test_core_and_security_doctypes_are_never_synced(self):
		for doctype in (
			"User",
			"Role",
			"Has Role",
			"DocType",
			"Custom Field",
			"Property Setter",
			"Server Script",
			"Client Script",
			"Print Format",
			"Web Page",
			"OAuth Client",
			"Connected App",
		):
			for direction in ("Push", "Inbound"):
				with self.subTest(doctype=doctype, direction=direction):
					with self.assertRaisesRegex(frappe.ValidationError, f"{doctype} cannot be synced"):
						self.make_rule(self.connector.name, doctype, ("on_update",), direction=direction)

	def test_a_push_rule_needs_read_permission_of_whoever_saves_it(self):
		make_api_user("ec-manager@example.com", [CONNECT_MANAGER])
		frappe.set_user("ec-manager@example.com")
		self.addCleanup(frappe.set_user, "Administrator")
		with self.assertRaisesRegex(frappe.ValidationError, "may not read Sales Invoice"):
			self.make_rule(
				self.connector.name, "Sales Invoice", ("on_submit",), payload_mode="Whole Document"
			)

	def test_an_inbound_rule_needs_the_doctype_in_the_connectors_allowed_doctypes(self):
		with self.assertRaisesRegex(frappe.ValidationError, "add Customer to its Allowed DocTypes"):
			self.make_rule(self.connector.name, "Customer", direction="Inbound")
		self.connector.append("allowed_doctypes", {"reference_doctype": "Customer", "can_create": 1})
		self.connector.save()
		self.make_rule(self.connector.name, "Customer", direction="Inbound")

	def test_preview_shows_the_exact_request_and_sends_nothing(self):
		rule = self.make_rule(
			self.connector.name,
			"Customer",
			("after_insert",),
			[("name", "id"), ("customer_name", "profile.name")],
			target_path="/customers",
		)
		customer = make_customer()
		before = frappe.db.count("Sync Event")
		preview = rule.preview(customer.name)
		self.assertEqual(preview["method"], "POST")
		self.assertEqual(preview["url"], self.remote.url + "/customers")
		body = json.loads(preview["body"])
		self.assertEqual(body["data"], {"id": customer.name, "profile": {"name": customer.customer_name}})
		self.assertEqual(preview["headers"]["Authorization"], "********")  # never the secret itself
		self.assertEqual(signing.verify(SECRET, preview["headers"], preview["body"]), body["id"])
		self.assertEqual(frappe.db.count("Sync Event"), before)
		self.assertEqual(self.remote.received(), [])

	def test_preview_reports_mapping_problems(self):
		rule = self.make_rule(
			self.connector.name, "Customer", ("after_insert",), [("email_id", "email", "None", None, 1)]
		)
		preview = rule.preview(make_customer().name)
		self.assertIn("email: required", preview["error"])


class TestConnectionCheck(ConnectTestCase):
	fake_remote = True

	def test_test_connection_sends_a_signed_ping(self):
		connector = self.make_connector(signing_secret=SECRET)
		result = connector.test_connection()
		self.assertTrue(result["ok"], result)
		[ping] = self.remote.received()
		self.assertEqual(ping.json()["type"], "erp_connect.ping")
		signing.verify(SECRET, ping.headers, ping.body)

	def test_test_connection_reports_failures(self):
		connector = self.make_connector()
		self.remote.script("/", Reply(503))
		result = connector.test_connection()
		self.assertEqual((result["ok"], result["status"]), (False, 503))
		connector.base_url = "http://127.0.0.1:9"  # nothing listens there
		result = connector.test_connection()
		self.assertFalse(result["ok"])
		self.assertIn("Connection", result["message"])

	def test_private_targets_need_the_connector_to_allow_them(self):
		connector = self.make_connector(allow_private_network=0)
		result = connector.test_connection()
		self.assertFalse(result["ok"])
		self.assertIn("non-public", result["message"])
		self.assertEqual(self.remote.received(), [])
