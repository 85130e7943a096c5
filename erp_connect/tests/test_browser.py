"""Desk in a real browser (headless Chromium driven by Playwright) against this bench with its Desk
assets built: a manager creates a connector and a rule through the UI, saves a document, sees its
event Delivered; the receiver fails and the next event is Dead; it recovers, the manager presses
Retry and the event is Delivered. Screenshots of every step are kept as test artifacts
($ERP_CONNECT_ARTIFACTS, else the bench's logs/erp_connect_screenshots)."""

import os
import time

import frappe

from erp_connect.testing.base import TEST_PREFIX, ConnectTestCase, kill_worker, serve_desk, start_worker
from erp_connect.testing.cleanup import delete_test_data
from erp_connect.testing.remote import Reply

CHROMIUM = os.environ.get("ERP_CONNECT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
	"--headless=new",
	"--no-sandbox",
	"--disable-gpu",
	"--disable-quic",
	"--no-first-run",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
	"--host-resolver-rules=MAP *.localhost 127.0.0.1",
]
WAIT_MS = 30_000


def artifacts_dir() -> str:
	default = os.path.join(frappe.local.sites_path, "..", "logs", "erp_connect_screenshots")
	path = os.path.abspath(os.environ.get("ERP_CONNECT_ARTIFACTS") or default)
	os.makedirs(path, exist_ok=True)
	return path


class TestDeskFlow(ConnectTestCase):
	fake_remote = True

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		if not os.path.exists(CHROMIUM):
			raise RuntimeError(
				f"no Chromium at {CHROMIUM}: apt install chromium (see README, the local test bench)"
			)
		if not os.path.exists(os.path.join(frappe.local.sites_path, "assets", "assets.json")):
			raise RuntimeError("Desk assets are not built in this bench: bench build (see README)")
		from playwright.sync_api import sync_playwright

		cls.base = f"http://{frappe.local.site}:{serve_desk()}"
		cls.playwright = sync_playwright().start()
		cls.browser = cls.playwright.chromium.launch(
			executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
		)
		cls.page = cls.browser.new_page(viewport={"width": 1400, "height": 900})
		cls.page.set_default_timeout(WAIT_MS)
		cls.shots = artifacts_dir()

	@classmethod
	def tearDownClass(cls):
		cls.browser.close()
		cls.playwright.stop()
		super().tearDownClass()

	def setUp(self):
		super().setUp()
		self.addCleanup(delete_test_data)
		self.worker = start_worker(burst=False)
		self.addCleanup(kill_worker, self.worker)
		self.name = TEST_PREFIX + "browser " + frappe.generate_hash(length=6)
		self.step = 0

	# -- helpers --------------------------------------------------------------------------------
	def shot(self, label: str) -> None:
		self.step += 1
		self.page.screenshot(path=os.path.join(self.shots, f"{self.step:02d}-{label}.png"), full_page=True)

	def open(self, route: str) -> None:
		self.page.goto(self.base + route, wait_until="domcontentloaded")
		self.page.wait_for_function(
			"() => window.cur_frm || window.cur_list || document.querySelector('.page-head')"
		)

	def field(self, fieldname: str):
		return self.page.locator(f".frappe-control[data-fieldname='{fieldname}']:visible").first

	def fill(self, fieldname: str, value: str) -> None:
		self.field(fieldname).locator("input, textarea").first.fill(value)

	def fill_link(self, fieldname: str, value: str) -> None:
		box = self.field(fieldname).locator("input").first
		box.fill(value)
		self.page.wait_for_timeout(500)  # the awesomplete search
		box.press("Escape")
		box.blur()

	def save(self) -> str:
		self.page.keyboard.press("Control+s")
		self.page.wait_for_function("() => cur_frm && !cur_frm.is_new() && !cur_frm.is_dirty()")
		return self.page.evaluate("() => cur_frm.doc.name")

	def wait_for_event_status(self, customer: str, status: str, timeout: float = 60) -> str:
		"""Reload the Sync Event list (no realtime server here) until the customer's event shows."""
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			self.open(f"/app/sync-event?reference_name={customer}")
			pill = self.page.locator(".list-row-container .indicator-pill", has_text=status)
			if pill.count():
				return self.page.evaluate("() => cur_list.data.length ? cur_list.data[0].name : null")
			time.sleep(1)
		self.shot(f"timeout-waiting-for-{status.lower()}")
		self.fail(f"the event of {customer} did not turn {status}")

	# -- the flow ------------------------------------------------------------------------------
	def test_set_up_in_desk_deliver_fail_and_retry(self):
		page = self.page
		page.goto(self.base + "/login", wait_until="domcontentloaded")
		page.fill("#login_email", "Administrator")
		page.fill("#login_password", "admin")
		page.click(".btn-login")
		page.wait_for_url("**/app**")

		self.open("/app/connector/new")
		self.fill("connector_name", self.name)
		self.field("connector_type").locator("select").select_option("Webhook")
		self.fill("base_url", self.remote.url)
		self.field("allow_private_network").locator("input[type=checkbox]").first.check()
		self.shot("connector-form")
		connector = self.save()
		self.assertEqual(connector, self.name)

		self.open("/app/sync-rule/new")
		self.fill_link("connector", connector)
		self.fill_link("reference_doctype", "Customer")
		self.field("event_after_insert").locator("input[type=checkbox]").first.check()
		self.fill("target_path", "/hooks")
		self.field("payload_mode").locator("select").select_option("Whole Document")
		self.shot("rule-form")
		rule = self.save()
		self.assertTrue(frappe.db.exists("Sync Rule", {"name": rule, "connector": connector}))

		first = self.create_customer("delivered")
		self.wait_for_event_status(first, "Delivered")
		self.shot("event-delivered")
		self.assertEqual(self.remote.received("/hooks")[-1].json()["data"]["name"], first)

		self.remote.set_default("/hooks", Reply(400, {"error": "rejected"}))
		second = self.create_customer("rejected")
		dead = self.wait_for_event_status(second, "Dead")
		self.shot("event-dead")

		self.remote.set_default("/hooks", Reply(200))
		self.open(f"/app/sync-event/{dead}")
		page.get_by_role("button", name="Retry").first.click()
		self.wait_for_event_status(second, "Delivered")
		self.shot("event-retried-and-delivered")
		frappe.db.rollback()
		self.assertEqual(frappe.db.get_value("Sync Event", dead, "status"), "Delivered")

	def create_customer(self, label: str) -> str:
		self.open("/app/customer/new")
		self.fill("customer_name", f"{self.name} {label}")
		return self.save()
