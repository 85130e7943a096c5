"""Head office (this site) and a branch (a second site of the same bench, over its standard REST
API with token auth) share Items: pushed out, changed at the branch, pulled back, and never
bounced back and forth."""

import os

import frappe
import requests

from erp_connect.services.pull import runs
from erp_connect.services.push import delivery
from erp_connect.testing.base import (
	TEST_PREFIX,
	ConnectTestCase,
	make_item,
	serve_other_site,
)
from erp_connect.testing.cleanup import delete_test_data
from erp_connect.testing.pull import PULL_USER, make_pull_user

BRANCH_SITE = os.environ.get("ERP_CONNECT_BRANCH_SITE", "branch.localhost")
ITEM_FIELDS = ("item_code", "item_name", "item_group", "stock_uom", "description")
FIELD_MAP = [{"erpnext_field": f, "external_path": f} for f in ITEM_FIELDS]


class TestTwoSites(ConnectTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		if not os.path.isdir(os.path.join(frappe.local.sites_path, BRANCH_SITE)):
			raise RuntimeError(f"the second site {BRANCH_SITE} is missing from this bench (see README)")
		cls.branch_url = serve_other_site(BRANCH_SITE)
		cls.branch = requests.Session()
		login = cls.branch.post(
			cls.branch_url + "/api/method/login", json={"usr": "Administrator", "pwd": "admin"}, timeout=30
		)
		login.raise_for_status()
		secret = cls.branch.post(
			cls.branch_url + "/api/method/frappe.core.doctype.user.user.generate_keys",
			json={"user": "Administrator"},
			timeout=30,
		).json()["message"]["api_secret"]
		key = cls.branch.get(cls.branch_url + "/api/resource/User/Administrator", timeout=30).json()
		cls.api_key, cls.api_secret = key["data"]["api_key"], secret
		make_pull_user()

	def setUp(self):
		super().setUp()
		self.addCleanup(self.cleanup)
		self.cleanup()
		self.connector = self.make_connector(
			connector_type="Frappe Site",
			base_url=self.branch_url,
			auth_type="Frappe Token",
			api_key=self.api_key,
			api_secret=self.api_secret,
			api_user=PULL_USER,  # writes what is pulled back
			allowed_doctypes=[{"reference_doctype": "Item", "can_create": 1, "can_update": 1}],
		)
		self.make_rule(
			self.connector.name,
			"Item",
			events=("after_insert", "on_update"),
			field_map=[(f, f) for f in ITEM_FIELDS],
		)
		self.pull_rule = frappe.get_doc(
			{
				"doctype": "Pull Rule",
				"connector": self.connector.name,
				"reference_doctype": "Item",
				"conflict_policy": "Remote Wins",
				"overlap_seconds": 60,
				"page_size": 2,  # several pages of keyset paging
				"field_map": FIELD_MAP,
			}
		).insert()
		frappe.db.commit()

	def cleanup(self):
		frappe.db.rollback()
		for name in self.branch_items():
			self.branch.delete(f"{self.branch_url}/api/resource/Item/{name}", timeout=30)
		for name in frappe.get_all("Item", {"item_code": ("like", TEST_PREFIX + "%")}, pluck="name"):
			frappe.delete_doc("Item", name, force=True, ignore_permissions=True)
		delete_test_data()
		frappe.db.commit()

	def branch_items(self) -> dict:
		r = self.branch.get(
			f"{self.branch_url}/api/resource/Item",
			params={
				"filters": frappe.as_json([["item_code", "like", TEST_PREFIX + "%"]]),
				"fields": frappe.as_json(["name", "description", "modified"]),
				"limit_page_length": 0,
			},
			timeout=30,
		)
		r.raise_for_status()
		return {row["name"]: row for row in r.json()["data"]}

	def events(self) -> int:
		return frappe.db.count("Sync Event", {"connector": self.connector.name})

	def run_pull(self):
		run = frappe.get_doc("Sync Run", runs.run(self.pull_rule.name))
		self.assertEqual(run.status, "Succeeded", run.message)
		return run

	def test_round_trip_between_head_office_and_branch_never_loops(self):
		# head office creates three items (after_insert and on_update each): created at the branch
		codes = [make_item(f"{TEST_PREFIX}shared {i}", description=f"v1 {i}").name for i in range(3)]
		frappe.db.commit()
		self.assertEqual(delivery.drain(self.connector.name)["delivered"], 6)
		self.assertEqual(set(self.branch_items()), set(codes))

		# an update goes out as an update
		item = frappe.get_doc("Item", codes[0])
		item.description = "v2 from head office"
		item.save()
		frappe.db.commit()
		self.assertEqual(delivery.drain(self.connector.name)["delivered"], 1)
		self.assertEqual(self.branch_items()[codes[0]]["description"], "v2 from head office")

		# the branch changes one item and creates another; the pull brings both in
		self.branch.put(
			f"{self.branch_url}/api/resource/Item/{codes[1]}",
			json={"description": "changed at the branch"},
			timeout=30,
		).raise_for_status()
		self.branch.post(
			f"{self.branch_url}/api/resource/Item",
			json={
				"item_code": f"{TEST_PREFIX}branch only",
				"item_group": "All Item Groups",
				"stock_uom": "Nos",
				"description": "made at the branch",
			},
			timeout=30,
		).raise_for_status()
		events_before = self.events()
		run = self.run_pull()
		self.assertEqual(run.created, 1)
		self.assertEqual(frappe.db.get_value("Item", codes[1], "description"), "changed at the branch")
		self.assertTrue(frappe.db.exists("Item", f"{TEST_PREFIX}branch only"))
		self.assertEqual(self.events(), events_before, "what came from the branch is not sent back to it")

		# and it stays quiet: another pull and drain change nothing on either side
		at_branch = self.branch_items()
		again = self.run_pull()
		self.assertEqual((again.created, again.updated), (0, 0))
		self.assertEqual(delivery.drain(self.connector.name).get("delivered", 0), 0)
		self.assertEqual(self.branch_items(), at_branch)
		self.assertEqual(self.events(), events_before)

	def test_a_tree_pulled_from_the_branch_is_numbered_by_this_sites_tree(self):
		parent, child = f"{TEST_PREFIX}branch parent", f"{TEST_PREFIX}branch child"
		self.addCleanup(self.delete_groups, child, parent)
		self.delete_groups(child, parent)
		for name, under, is_group in ((parent, "All Item Groups", 1), (child, parent, 0)):
			self.branch.post(
				f"{self.branch_url}/api/resource/Item Group",
				json={"item_group_name": name, "parent_item_group": under, "is_group": is_group},
				timeout=30,
			).raise_for_status()
		at_branch = self.branch.get(f"{self.branch_url}/api/resource/Item Group/{parent}", timeout=30).json()[
			"data"
		]
		connector = frappe.get_doc("Connector", self.connector.name)
		connector.append(
			"allowed_doctypes", {"reference_doctype": "Item Group", "can_create": 1, "can_update": 1}
		)
		connector.save()
		rule = frappe.get_doc(
			{
				"doctype": "Pull Rule",
				"connector": self.connector.name,
				"reference_doctype": "Item Group",
				"conflict_policy": "Remote Wins",
				"page_size": 1,
				# only the groups made above; the whole document, lft and rgt included, is read
				"watermark": at_branch["modified"],
			}
		).insert()
		frappe.db.commit()
		run = frappe.get_doc("Sync Run", runs.run(rule.name))
		self.assertEqual((run.status, run.created), ("Succeeded", 2), run.message)

		def numbers(name):
			return frappe.db.get_value("Item Group", name, ["lft", "rgt"])

		(root_lft, root_rgt), (p_lft, p_rgt), (c_lft, c_rgt) = map(
			numbers, ("All Item Groups", parent, child)
		)
		self.assertTrue(
			root_lft < p_lft < c_lft < c_rgt < p_rgt < root_rgt, (root_lft, p_lft, c_lft, c_rgt, p_rgt)
		)
		self.assertEqual((c_rgt - c_lft, p_rgt - p_lft), (1, 3))

	def delete_groups(self, *names):
		frappe.db.rollback()
		for name in names:
			self.branch.delete(f"{self.branch_url}/api/resource/Item Group/{name}", timeout=30)
			frappe.delete_doc("Item Group", name, force=True, ignore_permissions=True, ignore_missing=True)
		frappe.db.commit()
