"""The base of the pull tests: a REST connector to the fake remote, its customers, and a rule."""

import datetime

import frappe

from erp_connect.install import CONNECT_API_USER
from erp_connect.services.pull import runs
from erp_connect.testing.base import REMOTE_CUSTOMER_MAP, TEST_PREFIX, ConnectTestCase, make_api_user
from erp_connect.testing.cleanup import delete_test_data


def utc(seconds_ago: float = 0) -> str:
	moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds_ago)
	return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def remote_customers(count: int, same_time_every: int = 7) -> list[dict]:
	"""Old records in groups of equal timestamps, so groups straddle page boundaries."""
	return [
		{
			"id": f"c{i:05d}",
			"name": f"{TEST_PREFIX}pull {i:05d}",
			"site": f"https://c{i}.example",
			"updated_at": f"2026-01-01T{i // same_time_every // 3600:02d}:"
			f"{i // same_time_every // 60 % 60:02d}:{i // same_time_every % 60:02d}Z",
		}
		for i in range(count)
	]


PULL_USER = "ec-pull@example.com"
# what a pull connector may write: pulls write only what the connector's Allowed DocTypes list
CUSTOMERS_ALLOWED = [{"reference_doctype": "Customer", "can_create": 1, "can_update": 1}]


def make_pull_user() -> str:
	"""The API user pull connectors of the tests write as: Customers and Items, nothing more."""
	make_api_user(PULL_USER, [CONNECT_API_USER, "Sales Master Manager", "Item Manager"])
	return PULL_USER


class PullTestCase(ConnectTestCase):
	"""A REST API connector to the fake remote, which serves paginated lists; its API user (who
	writes what is pulled) may create and update Customers."""

	fake_remote = True

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		make_pull_user()

	def setUp(self):
		super().setUp()
		self.addCleanup(delete_test_data)
		self.connector = self.make_connector(
			connector_type="REST API", api_user=PULL_USER, allowed_doctypes=CUSTOMERS_ALLOWED
		)

	def make_pull_rule(self, **fields):
		rule = frappe.get_doc(
			{
				"doctype": "Pull Rule",
				"connector": self.connector.name,
				"reference_doctype": "Customer",
				"list_path": "/customers",
				"pagination_style": "Page Number",
				"page_size": 40,
				"records_path": "data",
				"since_param": "updated_since",
				"id_field": "id",
				"modified_field": "updated_at",
				"overlap_seconds": 60,
				"interval_minutes": 15,
				"field_map": REMOTE_CUSTOMER_MAP,
				**fields,
			}
		).insert()
		frappe.db.commit()
		return rule

	def run_pull(self, rule, **kwargs) -> "frappe.Document":
		name = runs.run(rule.name, **kwargs)
		self.assertTrue(name, "the run did not start")
		return frappe.get_doc("Sync Run", name)

	def customer_of(self, external_id: str) -> "frappe.Document":
		name = frappe.db.get_value(
			"Sync Link",
			{"connector": self.connector.name, "reference_doctype": "Customer", "external_id": external_id},
			"reference_name",
		)
		return frappe.get_doc("Customer", name)
