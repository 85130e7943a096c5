"""Scheduled pulls against the fake remote's paginated lists. Runs commit page by page (that is the
point), so every test cleans up what it committed."""

import time

import frappe
from frappe.utils.background_jobs import get_queue

from erp_connect.engine.transports import frappe_site
from erp_connect.install import CONNECT_API_USER, CONNECT_MANAGER
from erp_connect.services.common.locks import lock_name
from erp_connect.services.pull import runs
from erp_connect.testing.base import (
	TEST_PREFIX,
	force_allowed,
	kill_worker,
	make_api_user,
	our_customers,
	start_worker,
)
from erp_connect.testing.cleanup import delete_test_data
from erp_connect.testing.pull import CUSTOMERS_ALLOWED, PULL_USER, PullTestCase, remote_customers, utc
from erp_connect.testing.remote import Reply


class TestPull(PullTestCase):
	def test_5000_records_then_each_change_arrives_once(self):
		records = remote_customers(5000)
		self.remote.serve_list("/customers", records, style="page")
		rule = self.make_pull_rule(overlap_seconds=0)  # so the last run finds nothing to re-read

		first = self.run_pull(rule)
		self.assertEqual(
			(first.status, first.created, first.failed, first.pages), ("Succeeded", 5000, 0, 126)
		)
		self.assertEqual(our_customers(), 5000)
		self.assertNotIn("updated_since", self.remote.received("/customers")[0].query)

		# 90 records change on the remote, all at the same second: they straddle three pages
		self.remote.reset()
		changed_at = utc(5)  # after the first run started, before the second starts
		for r in records[100:190]:
			r.update(site=r["site"] + "/new", updated_at=changed_at)
		self.remote.serve_list("/customers", records, style="page")
		second = self.run_pull(frappe.get_doc("Pull Rule", rule.name))
		self.assertEqual((second.created, second.updated, second.unchanged, second.failed), (0, 90, 0, 0))
		asked = self.remote.received("/customers")
		self.assertEqual(len(asked), 3, "a run reads only what changed")
		self.assertLessEqual(asked[0].query["updated_since"], changed_at)
		self.assertEqual(self.customer_of("c00150").website, "https://c150.example/new")
		self.assertEqual(our_customers(), 5000)
		self.assertEqual(frappe.db.count("Sync Link", {"connector": self.connector.name}), 5000)

		# nothing changed: one request, nothing written
		self.remote.reset()
		self.remote.serve_list("/customers", records, style="page")
		third = self.run_pull(frappe.get_doc("Pull Rule", rule.name))
		self.assertEqual((third.created, third.updated), (0, 0))
		self.assertEqual(len(self.remote.received("/customers")), 1)

	def test_every_pagination_style_and_a_full_resync_duplicate_nothing(self):
		records = remote_customers(95, same_time_every=10)
		styles = {
			"page": {"pagination_style": "Page Number"},
			"offset": {"pagination_style": "Offset", "offset_param": "offset", "size_param": "limit"},
			"cursor": {"pagination_style": "Cursor Token", "next_path": "next_cursor"},
			"next_link": {"pagination_style": "Next Link", "next_path": "next"},
			"link_header": {"pagination_style": "Link Header"},
		}
		for style, fields in styles.items():
			with self.subTest(style):
				delete_test_data()
				self.connector = self.make_connector(
					connector_type="REST API", api_user=PULL_USER, allowed_doctypes=CUSTOMERS_ALLOWED
				)
				self.remote.reset()
				self.remote.serve_list("/customers", records, style=style)
				rule = self.make_pull_rule(page_size=10, **fields)
				self.assertEqual(self.run_pull(rule).created, 95)
				again = self.run_pull(frappe.get_doc("Pull Rule", rule.name), full_resync=True)
				self.assertEqual((again.created, again.updated, again.unchanged), (0, 0, 95))
				self.assertEqual(our_customers(), 95)

	def test_bad_records_are_reported_with_the_record_and_the_rest_is_written(self):
		records = remote_customers(30)
		records[4]["name"] = None  # customer_name is required
		records[9]["id"] = None
		self.remote.serve_list("/customers", records, style="cursor")
		rule = self.make_pull_rule(pagination_style="Cursor Token", next_path="next_cursor", page_size=10)
		run = self.run_pull(rule)
		self.assertEqual((run.status, run.created, run.failed), ("Completed with Errors", 28, 2))
		errors = {e.external_id or "": e for e in run.errors}
		self.assertIn("name", errors["c00004"].error)
		self.assertIn("c00004", errors["c00004"].record)
		self.assertIn("no external id", errors[""].error)

	def test_a_run_killed_mid_way_resumes_without_gaps_or_duplicates(self):
		records = remote_customers(400)
		endpoint = self.remote.serve_list(
			"/customers", records, style="cursor", slow_from=200, slow_seconds=30
		)
		rule = self.make_pull_rule(pagination_style="Cursor Token", next_path="next_cursor", page_size=50)
		get_queue("long").empty()  # jobs earlier tests queued and left would come first
		runs.enqueue_run(rule.name, manual=True)
		frappe.db.commit()
		worker = start_worker(burst=False, queue="long")
		try:
			self.wait_for(lambda: len(self.remote.received("/customers")) >= 5, 60)  # waits on page 5
		finally:
			kill_worker(worker)
		frappe.db.rollback()
		self.assertEqual(our_customers(), 200, "four pages were committed before the kill")
		interrupted = frappe.get_doc("Pull Rule", rule.name)
		self.assertTrue(interrupted.resume_state)

		endpoint.slow_from = None
		self.remote.requests.clear()
		self.wait_for(lambda: lock_is_free("pull", rule.name), 30)  # the killed run's connection is gone
		resumed = self.run_pull(interrupted)
		self.assertTrue(resumed.resumed)
		self.assertEqual(self.remote.received("/customers")[0].query.get("cursor"), "200")
		self.assertEqual((resumed.created, resumed.unchanged, resumed.failed), (200, 0, 0))
		self.assertEqual(frappe.db.get_value("Sync Run", interrupted.last_run, "status"), "Interrupted")
		self.assertEqual(our_customers(), 400)
		self.assertFalse(frappe.db.get_value("Pull Rule", rule.name, "resume_state"))

	def test_401_three_times_pauses_the_rule_with_a_reason(self):
		self.remote.serve_list("/customers", remote_customers(3))
		self.remote.script("/customers", Reply(401), Reply(401), Reply(401))
		rule = self.make_pull_rule()
		for _ in range(3):
			self.assertEqual(self.run_pull(rule).status, "Failed")
		rule.reload()
		self.assertTrue(rule.paused)
		self.assertIn("401", rule.paused_reason)
		self.assertTrue(frappe.db.exists("Notification Log", {"document_name": rule.name}))
		self.assertIsNone(runs.run(rule.name), "a paused rule does not run")
		self.assertEqual(len(self.remote.received("/customers")), 3)

		rule.resume()
		frappe.db.commit()
		self.assertEqual(self.run_pull(rule).created, 3)

	def test_429_retry_after_is_waited_out(self):
		self.remote.serve_list("/customers", remote_customers(3))
		self.remote.script("/customers", Reply(429, headers={"Retry-After": "2"}))
		rule = self.make_pull_rule()
		run = self.run_pull(rule)
		self.assertEqual(run.created, 3)
		first, second = self.remote.received("/customers")
		self.assertGreaterEqual(second.received_at - first.received_at, 2)

	def test_the_connectors_request_rate_is_never_exceeded(self):
		self.remote.serve_list("/customers", remote_customers(50), style="page")
		self.connector.db_set("requests_per_minute", 2)
		rule = self.make_pull_rule(page_size=10)  # six requests
		window = 2  # seconds instead of a minute, so the test is quick; the counting is the same
		self.addCleanup(setattr, runs, "THROTTLE_WINDOW_SECONDS", runs.THROTTLE_WINDOW_SECONDS)
		runs.THROTTLE_WINDOW_SECONDS = window
		self.assertEqual(self.run_pull(rule).created, 50)
		sent = [r.received_at for r in self.remote.received("/customers")]
		self.assertEqual(len(sent), 6)
		# two per window: the six requests cross two window boundaries, so they span more than a
		# whole window (unthrottled they take well under a second)
		self.assertGreaterEqual(sent[-1] - sent[0], window, sent)

	def test_a_long_retry_after_ends_the_run_and_the_next_continues(self):
		records = remote_customers(60)
		self.remote.serve_list("/customers", records, style="page")
		rule = self.make_pull_rule(page_size=20)
		real_list_page = self.remote._list_page

		def busy_on_page_2(endpoint, path, query):
			if query.get("page") == "2" and not getattr(busy_on_page_2, "done", False):
				busy_on_page_2.done = True
				return Reply(429, {"error": "slow down"}, {"Retry-After": "3600"})
			return real_list_page(endpoint, path, query)

		self.remote._list_page = busy_on_page_2
		try:
			stopped = self.run_pull(rule)
			self.assertEqual((stopped.status, stopped.created), ("Failed", 20))
			rule.reload()
			self.assertGreater(rule.next_run_at, frappe.utils.add_to_date(None, minutes=50))
			self.assertIsNone(rule.watermark)
			resumed = self.run_pull(rule)
		finally:
			self.remote._list_page = real_list_page
		self.assertEqual((resumed.resumed, resumed.created), (1, 40))
		self.assertEqual(our_customers(), 60)

	def test_only_due_rules_run_from_the_scheduler(self):
		self.remote.serve_list("/customers", remote_customers(2))
		rule = self.make_pull_rule()
		self.assertGreater(rule.next_run_at, frappe.utils.now_datetime())
		self.assertIsNone(runs.run(rule.name, manual=False), "not due yet")
		rule.db_set("next_run_at", frappe.utils.add_to_date(None, minutes=-1), commit=True)
		self.assertTrue(runs.run(rule.name, manual=False))
		rule.reload()
		self.assertGreater(rule.next_run_at, frappe.utils.add_to_date(None, minutes=14))

	def test_pulled_changes_are_not_pushed_back_to_where_they_came_from(self):
		self.remote.serve_list("/customers", remote_customers(3))
		self.make_rule(self.connector.name, "Customer", events=("after_insert",))
		elsewhere = self.make_connector()
		self.make_rule(elsewhere.name, "Customer", events=("after_insert",))
		rule = self.make_pull_rule()
		self.assertEqual(self.run_pull(rule).created, 3)
		self.assertEqual(frappe.db.count("Sync Event", {"connector": self.connector.name}), 0)
		self.assertEqual(frappe.db.count("Sync Event", {"connector": elsewhere.name}), 3)

	def test_a_frappe_site_pull_keeps_the_local_tree_of_a_tree_doctype(self):
		group = TEST_PREFIX + "group " + frappe.generate_hash(length=6)
		self.addCleanup(lambda: frappe.delete_doc("Item Group", group, force=True, ignore_missing=True))
		self.connector = self.make_connector(
			connector_type="Frappe Site",
			auth_type="Frappe Token",
			api_key="k",
			api_secret="s",
			api_user=PULL_USER,
			allowed_doctypes=[{"reference_doctype": "Item Group", "can_create": 1, "can_update": 1}],
		)
		# the other site's own nested-set numbers and old parent, which mean nothing here
		remote_group = {
			"name": group,
			"item_group_name": group,
			"parent_item_group": "All Item Groups",
			"is_group": 0,
			"lft": 900001,
			"rgt": 900002,
			"old_parent": "All Item Groups",
			"modified": "2026-11-24 10:00:00.000000",
			"creation": "2026-11-24 10:00:00.000000",
			"owner": "someone@branch.example",
			"docstatus": 0,
			"idx": 0,
			"doctype": "Item Group",
		}
		self.remote.serve_list(frappe_site.resource_path("Item Group"), [remote_group], style="frappe")
		rule = self.make_pull_rule(
			reference_doctype="Item Group",
			list_path="",
			field_map=[],
			page_size=10,
			conflict_policy="Remote Wins",
		)
		self.assertEqual(self.run_pull(rule).created, 1)
		lft, rgt, old_parent = frappe.db.get_value("Item Group", group, ["lft", "rgt", "old_parent"])
		root_lft, root_rgt = frappe.db.get_value("Item Group", "All Item Groups", ["lft", "rgt"])
		self.assertNotEqual((lft, rgt), (900001, 900002))
		self.assertTrue(root_lft < lft < rgt < root_rgt and rgt == lft + 1, (root_lft, lft, rgt, root_rgt))
		self.assertEqual(old_parent, "All Item Groups")

	def wait_for(self, condition, timeout: float):
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			if condition():
				return
			time.sleep(0.1)
		self.fail("timed out")


EVIL = "ec-evil-admin@example.com"
MANAGER = "ec-manager@example.com"
SYSTEM_MANAGER = "ec-sysman@example.com"
NO_ROLE = "ec-no-role@example.com"
DISABLED = "ec-disabled@example.com"
# what a hostile remote serves for a pull into User: a new System Manager with its chosen password
EVIL_USERS = [
	{
		"id": "u1",
		"email": EVIL,
		"first_name": "Evil",
		"new_password": "Chosen-by-the-remote-42!",
		"roles": [{"role": "System Manager"}],
		"updated_at": "2026-01-01T00:00:00Z",
	}
]
EVIL_MAP = [{"erpnext_field": f, "external_path": f} for f in ("email", "first_name", "new_password")] + [
	{"erpnext_field": "roles[].role", "external_path": "roles[].role"}
]


class TestPullSecurity(PullTestCase):
	"""Issue 13 item 18: a Connect Manager made the scheduled pull create a System Manager."""

	def setUp(self):
		super().setUp()
		self.addCleanup(self.delete_evil_user)

	def delete_evil_user(self):
		frappe.db.rollback()
		if frappe.db.exists("User", EVIL):
			frappe.delete_doc("User", EVIL, force=True, ignore_permissions=True)
		frappe.db.commit()

	def forced_rule(self, doctype: str, **fields):
		"""A rule put in the database past its validation, as a bad migration or db_set could."""
		rule = frappe.get_doc(
			{
				"doctype": "Pull Rule",
				"connector": self.connector.name,
				"reference_doctype": doctype,
				"list_path": "/users",
				"pagination_style": "Page Number",
				"page_size": 40,
				"records_path": "data",
				"id_field": "id",
				"interval_minutes": 15,
				"field_map": EVIL_MAP,
				**fields,
			}
		)
		rule.flags.ignore_validate = True
		rule.insert()
		frappe.db.commit()
		return rule

	def test_a_connect_manager_cannot_set_up_a_pull_into_user(self):
		make_api_user(MANAGER, [CONNECT_MANAGER])
		frappe.set_user(MANAGER)
		self.addCleanup(frappe.set_user, "Administrator")
		with self.assertRaisesRegex(frappe.ValidationError, "User cannot be synced"):
			self.make_connector(
				connector_type="REST API",
				allowed_doctypes=[{"reference_doctype": "User", "can_create": 1, "can_update": 1}],
			)
		connector = self.make_connector(connector_type="REST API")
		with self.assertRaisesRegex(frappe.ValidationError, "User cannot be synced"):
			self.make_pull_rule(
				connector=connector.name, reference_doctype="User", list_path="/users", field_map=[]
			)
		for doctype in ("Role", "Has Role", "DocType", "Custom Field", "Server Script", "System Settings"):
			with self.assertRaisesRegex(frappe.ValidationError, "cannot be synced"):
				self.make_pull_rule(connector=connector.name, reference_doctype=doctype, field_map=[])

	def test_a_pull_into_user_forced_past_validation_creates_nobody(self):
		self.remote.serve_list("/users", EVIL_USERS)
		self.connector.db_set("api_user", None, commit=True)  # the reported case: no API user
		run = self.run_pull(self.forced_rule("User"))
		self.assertFalse(frappe.db.exists("User", EVIL), "the pull created a System Manager")
		self.assertEqual(run.status, "Failed")
		# with a valid API user and User forced into the Allowed DocTypes it is still refused
		self.connector.db_set("api_user", PULL_USER, commit=True)
		force_allowed(self.connector.name, "User")
		run = self.run_pull(self.forced_rule("User"))
		self.assertFalse(frappe.db.exists("User", EVIL), "the pull created a System Manager")
		self.assertIn("User cannot be synced", run.message or "".join(e.error for e in run.errors))

	def test_a_pull_without_an_api_user_fails_and_writes_nothing(self):
		self.remote.serve_list("/customers", remote_customers(3))
		rule = self.make_pull_rule()
		self.connector.db_set("api_user", None, commit=True)
		run = self.run_pull(rule)
		self.assertEqual(run.status, "Failed")
		self.assertIn("has no API User", run.message)
		self.assertEqual(our_customers(), 0)

	def test_a_pull_never_runs_as_administrator_or_a_system_manager(self):
		make_api_user(SYSTEM_MANAGER, [CONNECT_API_USER, "System Manager"])
		make_api_user(NO_ROLE, ["Sales Master Manager"])
		make_api_user(DISABLED, [CONNECT_API_USER, "Sales Master Manager"])
		frappe.db.set_value("User", DISABLED, "enabled", 0)
		frappe.db.commit()
		self.remote.serve_list("/customers", remote_customers(3))
		rule = self.make_pull_rule()
		for user, reason in (
			("Administrator", "Administrator"),
			(SYSTEM_MANAGER, "System Manager"),
			("Guest", "Guest"),
			(NO_ROLE, "needs the role Connect API User"),
			(DISABLED, "is disabled"),
		):
			connector = frappe.get_doc("Connector", self.connector.name)
			connector.api_user = user
			with self.assertRaisesRegex(frappe.ValidationError, reason):
				connector.save()
			self.connector.db_set("api_user", user, commit=True)
			run = self.run_pull(rule)
			self.assertEqual(run.status, "Failed", user)
			self.assertIn(reason, run.message)
			self.assertEqual(our_customers(), 0)

	def test_a_pull_on_a_doctype_the_connector_does_not_allow_writes_nothing(self):
		connector = self.make_connector(connector_type="REST API", api_user=PULL_USER)
		with self.assertRaisesRegex(frappe.ValidationError, "add Customer to its Allowed DocTypes"):
			self.make_pull_rule(connector=connector.name)
		self.remote.serve_list("/customers", remote_customers(3))
		rule = self.make_pull_rule()
		frappe.db.delete("Connector Access", {"parent": self.connector.name})
		frappe.db.commit()
		run = self.run_pull(rule)
		self.assertEqual(our_customers(), 0)
		self.assertIn("Allowed DocTypes", run.message or "".join(e.error for e in run.errors))


class TestConflicts(PullTestCase):
	"""One record changed on both sides since the last sync, under each policy."""

	def both_change(self, policy: str):
		record = remote_customers(1)[0]
		self.remote.serve_list("/customers", [record])
		rule = self.make_pull_rule(conflict_policy=policy)
		self.run_pull(rule)
		customer = self.customer_of(record["id"])
		customer.website = "https://changed-in-erpnext.example"
		customer.save()
		record.update(site="https://changed-remotely.example", updated_at=utc())
		frappe.db.commit()
		return rule, record

	def test_remote_wins(self):
		rule, record = self.both_change("Remote Wins")
		run = self.run_pull(frappe.get_doc("Pull Rule", rule.name))
		self.assertEqual((run.updated, run.conflicts), (1, 0))
		self.assertEqual(self.customer_of(record["id"]).website, "https://changed-remotely.example")

	def test_erpnext_wins(self):
		rule, record = self.both_change("ERPNext Wins")
		run = self.run_pull(frappe.get_doc("Pull Rule", rule.name))
		self.assertEqual((run.updated, run.conflicts), (0, 1))
		self.assertEqual(self.customer_of(record["id"]).website, "https://changed-in-erpnext.example")
		again = self.run_pull(frappe.get_doc("Pull Rule", rule.name), full_resync=True)
		self.assertEqual(
			(again.unchanged, again.conflicts), (1, 0), "the same remote version is not held twice"
		)

	def test_park_for_review_then_apply_remote(self):
		rule, record = self.both_change("Park for Review")
		run = self.run_pull(frappe.get_doc("Pull Rule", rule.name))
		self.assertEqual((run.updated, run.conflicts), (0, 1))
		customer = self.customer_of(record["id"])
		self.assertEqual(customer.website, "https://changed-in-erpnext.example")
		parked = frappe.get_all("Sync Conflict", {"connector": self.connector.name}, pluck="name")
		self.assertEqual(len(parked), 1)

		# a newer remote version replaces the parked one instead of parking a second
		record.update(site="https://changed-remotely-again.example", updated_at=utc())
		self.run_pull(frappe.get_doc("Pull Rule", rule.name))
		conflict = frappe.get_doc("Sync Conflict", parked[0])
		self.assertEqual(frappe.db.count("Sync Conflict", {"connector": self.connector.name}), 1)
		self.assertIn("changed-remotely-again", conflict.remote_data)
		self.assertIn("changed-in-erpnext", conflict.erpnext_data)

		conflict.apply_remote()
		self.assertEqual(conflict.status, "Remote Applied")
		self.assertEqual(customer.reload().website, "https://changed-remotely-again.example")
		self.assertRaises(frappe.ValidationError, conflict.keep_erpnext)

	def test_a_change_on_one_side_only_is_no_conflict(self):
		rule, record = self.both_change("Park for Review")
		record["site"] = "https://c0.example"  # the remote is back to what was synced
		self.assertEqual(self.run_pull(frappe.get_doc("Pull Rule", rule.name)).unchanged, 1)
		record.update(site="https://only-remote.example", updated_at=utc())
		customer = self.customer_of(record["id"])
		customer.website = "https://c0.example"  # and ERPNext too
		customer.save()
		frappe.db.commit()
		run = self.run_pull(frappe.get_doc("Pull Rule", rule.name))
		self.assertEqual((run.updated, run.conflicts), (1, 0))


def lock_is_free(kind: str, subject: str) -> bool:
	return bool(frappe.db.sql("select is_free_lock(%s)", lock_name(kind, subject))[0][0])
