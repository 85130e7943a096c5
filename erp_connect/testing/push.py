"""The base of the push tests: a connector to the fake remote and the helpers that read what
the outbox and the drain committed."""

import frappe
from frappe.utils import add_to_date, now_datetime

from erp_connect.engine import signing
from erp_connect.services.push import delivery
from erp_connect.testing.base import TEST_PREFIX, ConnectTestCase
from erp_connect.testing.cleanup import delete_test_data

SECRET = signing.generate_secret()
OURS = ("like", TEST_PREFIX + "%")  # connectors made by these tests
CUSTOMER_MAP = [("name", "id"), ("customer_name", "name"), ("customer_type", "type")]


class PushTestCase(ConnectTestCase):
	"""A webhook connector pointing at the fake remote, with a signing secret and a 2 s timeout."""

	fake_remote = True

	def setUp(self):
		super().setUp()
		self.connector = self.make_connector(signing_secret=SECRET, timeout_seconds=2)
		frappe.cache.delete_value(delivery._backoff_key(self.connector.name))
		self.addCleanup(delete_test_data)

	def customer_rule(self, **fields):
		return self.make_rule(self.connector.name, "Customer", ("after_insert",), CUSTOMER_MAP, **fields)

	def events_of(self, doc) -> list:
		frappe.db.commit()  # end our snapshot: see what workers committed
		return frappe.get_all(
			"Sync Event",
			{
				"reference_doctype": doc.doctype,
				"reference_name": doc.name,
				"connector": OURS,  # rules the site itself may have are not ours
			},
			["*"],
			order_by="seq asc",
		)

	def make_due(self, *docs):
		for doc in docs:
			frappe.db.set_value(
				"Sync Event",
				{"reference_name": doc.name, "status": "Retrying"},
				"next_attempt_at",
				add_to_date(now_datetime(), seconds=-1),
			)
		frappe.cache.delete_value(delivery._backoff_key(self.connector.name))
		frappe.db.commit()

	def drain(self):
		frappe.db.commit()
		return delivery.drain(self.connector.name)
