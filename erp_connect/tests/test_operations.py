"""What a manager sees and does on a connector, and the workspace's numbers and charts."""

import frappe
from frappe.utils import add_to_date

from erp_connect.api import dashboard
from erp_connect.services.push import delivery
from erp_connect.testing.base import ConnectTestCase, make_customer
from erp_connect.testing.cleanup import delete_test_data
from erp_connect.testing.remote import Reply


class TestConnectorOperations(ConnectTestCase):
	fake_remote = True

	def setUp(self):
		super().setUp()
		self.addCleanup(delete_test_data)
		self.connector = self.make_connector()
		self.make_rule(self.connector.name, "Customer", events=("after_insert",))

	def drain(self) -> dict:
		frappe.db.commit()
		return delivery.drain(self.connector.name)

	def test_pause_holds_deliveries_and_resume_sends_them(self):
		self.connector.pause()
		make_customer()
		self.assertEqual(self.drain()["delivered"], 0)
		self.assertEqual(self.remote.received(), [])
		self.assertEqual(
			frappe.db.count("Sync Event", {"connector": self.connector.name, "status": "Pending"}), 1
		)
		health = self.connector.health()
		self.assertEqual((health["state"], health["pending"]), ("disabled", 1))
		self.assertIn("paused", health["reason"])
		self.assertNotIn(self.connector.name, delivery.connectors_with_due_events())

		self.connector.resume()
		self.assertEqual(self.drain()["delivered"], 1)
		self.assertEqual(self.connector.health()["state"], "healthy")

	def test_the_banner_follows_the_connector(self):
		self.remote.set_default("/hooks", Reply(503))
		make_customer()
		self.drain()
		self.assertEqual(self.connector.health()["state"], "degraded")
		self.remote.set_default("/hooks", Reply(422))
		frappe.db.set_value(
			"Sync Event", {"connector": self.connector.name}, "next_attempt_at", add_to_date(None, seconds=-1)
		)
		self.drain()
		health = self.connector.health()
		self.assertEqual((health["state"], health["dead"]), ("failing", 1))
		self.assertIn("1 dead events", health["reason"])
		activity = self.connector.recent_activity()
		self.assertEqual([e.status for e in activity["events"]], ["Dead"])
		self.assertEqual(activity["events"][0].last_status_code, 422)

	def test_workspace_cards_and_charts(self):
		self.assertTrue(frappe.db.exists("Workspace", "ERP Connect"))
		workspace = frappe.get_doc("Workspace", "ERP Connect")
		for card in workspace.number_cards:
			self.assertTrue(frappe.db.exists("Number Card", card.number_card_name), card.number_card_name)
		for chart in workspace.charts:
			self.assertTrue(frappe.db.exists("Dashboard Chart", chart.chart_name), chart.chart_name)
		self.assertEqual(
			{s.link_to for s in workspace.shortcuts},
			{
				"Connector",
				"Sync Rule",
				"Pull Rule",
				"Sync Event",
				"Inbound Request",
				"Sync Run",
				"POS Terminal",
				"POS Operation",
				"Sync Conflict",
				"Stream Dead Letter",
				"Parked Payment",
			},
		)

		make_customer()
		before = dashboard.delivered_24h()["value"]
		self.drain()
		self.assertEqual(dashboard.delivered_24h()["value"], before + 1)
		chart = dashboard.deliveries_by_connector(
			chart_name="Deliveries and Failures by Connector", no_cache=1
		)
		mine = next(d for d in chart["datasets"] if d["name"] == f"{self.connector.name} delivered")
		self.assertEqual(mine["values"][-1], 1)
		self.assertEqual(len(chart["labels"]), 14)
		lag = dashboard.sync_lag_by_connector(chart_name="Sync Lag by Connector", no_cache=1)
		self.assertIn(self.connector.name, [d["name"] for d in lag["datasets"]])
		self.assertGreaterEqual(dashboard.oldest_pending_age()["value"], 0)
