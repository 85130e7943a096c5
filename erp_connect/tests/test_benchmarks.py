"""A benchmark leaves the site as it found it: what it made is gone, caches included."""

import frappe
from frappe.integrations.doctype.webhook import get_all_webhooks

from erp_connect.benchmarks import push
from erp_connect.testing.base import ConnectTestCase


class TestBenchmarkCleanup(ConnectTestCase):
	def test_the_frappe_webhook_baseline_leaves_no_cached_webhook_behind(self):
		self.addCleanup(push.cleanup)
		push.make_frappe_webhook("http://127.0.0.1:9")
		cached = frappe.cache.get_value("webhooks", get_all_webhooks)  # as the first save loads it
		self.assertTrue(self.ours(cached))
		push.cleanup()
		self.assertFalse(frappe.db.exists("Webhook", {"name": ("like", push.PREFIX + "%")}))
		# a plain delete left Frappe's cached list: every later Customer save queued a job for it
		self.assertEqual(self.ours(frappe.cache.get_value("webhooks") or {}), [])

	def ours(self, webhooks: dict) -> list[str]:
		return [w.name for w in webhooks.get("Customer", []) if w.name.startswith(push.PREFIX)]
