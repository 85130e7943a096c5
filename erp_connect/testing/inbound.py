"""The base of the inbound tests: a connector with an API user that has real API keys, and calls
over HTTP to the test site's own web server."""

import frappe

from erp_connect.install import CONNECT_API_USER
from erp_connect.services.inbound import inbox
from erp_connect.testing.base import TEST_PREFIX, ConnectTestCase, make_api_user, site_http
from erp_connect.testing.cleanup import delete_test_data

API_USER = "ec-api@example.com"
OTHER_API_USER = "ec-api-other@example.com"
CUSTOMER_MAP = [
	# (erpnext_field, external_path, transform, option, required)
	("customer_name", "name", "None", None, 1),
	("customer_type", "type", "Value Map", '{"company": "Company", "person": "Individual"}'),
	("customer_group", "group", "Constant", "All Customer Groups"),
	("territory", "territory", "Constant", "All Territories"),
]


class InboundTestCase(ConnectTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.key, cls.secret = make_api_user(
			API_USER, [CONNECT_API_USER, "Sales Master Manager", "Sales User"]
		)
		cls.other_key, cls.other_secret = make_api_user(
			OTHER_API_USER, [CONNECT_API_USER, "Sales Master Manager"]
		)

	def setUp(self):
		super().setUp()
		self.addCleanup(delete_test_data)
		self.connector = self.make_connector(
			api_user=API_USER,
			allowed_doctypes=[
				{"reference_doctype": "Customer", "can_create": 1, "can_update": 1},
				{"reference_doctype": "Sales Order", "can_create": 1, "can_update": 1},
			],
		)
		self.make_rule(self.connector.name, "Customer", direction="Inbound", field_map=CUSTOMER_MAP)
		frappe.db.commit()
		self.url, self.http = site_http(self.key, self.secret)

	def call(self, records, doctype="Customer", connector=None, http=None, headers=None, **extra):
		body = {
			"connector": connector or self.connector.name,
			"doctype": doctype,
			"records": records,
			**extra,
		}
		return (http or self.http).post(
			f"{self.url}/api/method/erp_connect.api.v1.upsert", json=body, headers=headers or {}
		)

	def upsert(self, records, **kwargs) -> dict:
		response = self.call(records, **kwargs)
		self.assertEqual(response.status_code, 200, response.text)
		return response.json()["message"]


def customers(n, prefix="c", **overrides):
	return [
		{"id": f"{prefix}-{i}", "name": f"{TEST_PREFIX}{prefix} {i}", "type": "company", **overrides}
		for i in range(n)
	]


def process_received(connector: str) -> list:
	"""Process what the webhook receiver stored for ``connector`` (in this process, as the inbox's
	job would); the connector's Inbound Requests afterwards, oldest first."""
	frappe.db.commit()  # a fresh snapshot: the web server's inserts are newer than ours
	for name in frappe.get_all(
		"Inbound Request", {"connector": connector, "status": "Received"}, pluck="name"
	):
		inbox.process(name)
	frappe.db.commit()
	return frappe.get_all(
		"Inbound Request",
		{"connector": connector},
		["name", "status", "error", "result"],
		order_by="creation",
	)
