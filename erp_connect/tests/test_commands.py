"""The bench commands, run as an operator runs them: `bench --site SITE erp-connect ...` in its
own process, against data this test committed."""

import json

import frappe

from erp_connect.testing.base import REMOTE_CUSTOMER_MAP, TEST_PREFIX, bench, make_customer
from erp_connect.testing.pull import PullTestCase, remote_customers
from erp_connect.testing.remote import Reply


class TestCommands(PullTestCase):
	def setUp(self):
		super().setUp()
		self.make_rule(self.connector.name, "Customer", events=("after_insert",))
		self.customer = make_customer()
		frappe.db.commit()

	def events(self, status: str | None = None) -> list[str]:
		frappe.db.rollback()
		filters = {"connector": self.connector.name, **({"status": status} if status else {})}
		return frappe.get_all("Sync Event", filters, pluck="name")

	def test_status_drain_retry_dead_and_replay(self):
		self.remote.set_default("/hooks", Reply(400, "bad"))
		out = bench("drain", "--connector", self.connector.name)
		self.assertEqual(out.returncode, 0, out.stderr)
		self.assertIn("1 dead", out.stdout)

		out = bench("status", "--connector", self.connector.name)
		self.assertEqual(out.returncode, 1, out.stdout + out.stderr)  # failing: a dead event
		self.assertIn("failing", out.stdout)
		self.assertIn("1 dead events", out.stdout)
		report = json.loads(bench("status", "--json").stdout)
		mine = next(c for c in report["connectors"] if c["connector"] == self.connector.name)
		self.assertEqual((mine["state"], mine["dead"]), ("failing", 1))

		self.remote.set_default("/hooks", Reply(200))
		out = bench("retry-dead", "--connector", self.connector.name)
		self.assertEqual((out.returncode, out.stdout.strip()), (0, "1 dead events queued again"))
		self.assertEqual(len(self.events("Pending")), 1)
		self.assertIn("1 delivered", bench("drain", "--connector", self.connector.name).stdout)
		self.assertEqual(bench("status", "--connector", self.connector.name).returncode, 0)

		out = bench("replay", "--since", "2000-01-01 00:00", "--connector", self.connector.name, "--yes")
		self.assertEqual((out.returncode, out.stdout.strip()), (0, "1 new events queued"))
		self.assertEqual(len(self.events()), 2)

		self.assertEqual(bench("drain", "--connector", "no such connector").returncode, 2)
		self.assertEqual(bench("replay", "--since", "someday", "--yes").returncode, 2)

	def test_run_pull(self):
		self.remote.serve_list("/customers", remote_customers(3))
		rule = frappe.get_doc(
			{
				"doctype": "Pull Rule",
				"connector": self.connector.name,
				"reference_doctype": "Customer",
				"list_path": "/customers",
				"field_map": REMOTE_CUSTOMER_MAP,
			}
		).insert()
		frappe.db.commit()
		out = bench("run-pull", rule.name)
		self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
		self.assertIn("Succeeded; 1 pages, 3 created", out.stdout)
		self.assertEqual(bench("run-pull", "PR-none").returncode, 2)
		self.remote.script("/customers", Reply(500), Reply(500), Reply(500), Reply(500))
		self.assertEqual(bench("run-pull", rule.name).returncode, 1)

	def test_doctor_names_every_problem(self):
		nowhere = "http://127.0.0.1:9"  # nothing listens
		frappe.db.set_value("Connector", self.connector.name, "base_url", nowhere)
		locked = self.make_connector(auth_type="Bearer Token", bearer_token="secret")
		frappe.db.set_value("Connector", locked.name, "bearer_token", None)  # its secret went missing
		rule = frappe.get_all("Sync Rule", {"connector": self.connector.name}, pluck="name")[0]
		frappe.db.set_value("Sync Rule", rule, "reference_doctype", TEST_PREFIX + "Gone DocType")
		frappe.db.set_value("Connector", locked.name, "api_user", "Administrator")  # forced past its check
		frappe.db.commit()
		out = bench("doctor")
		self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
		self.assertIn(f"reachable  {self.connector.name}: http://127.0.0.1:9 cannot be reached", out.stdout)
		self.assertIn(f"rules      {rule}: {TEST_PREFIX}Gone DocType no longer exists", out.stdout)
		self.assertIn(f"secrets    {locked.name}: Bearer Token is empty", out.stdout)
		self.assertIn(f"connectors {locked.name}: Administrator may not write for a connector", out.stdout)
		from frappe.utils.scheduler import is_scheduler_disabled

		if is_scheduler_disabled(verbose=False):
			self.assertIn("the scheduler is disabled", out.stdout)
		from frappe.utils.background_jobs import get_workers

		if not get_workers():  # a worker killed by another test stays registered for a few minutes
			self.assertIn("no background worker is running", out.stdout)
		self.assertNotIn("reachable", bench("doctor", "--offline").stdout)
