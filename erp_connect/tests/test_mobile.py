"""Mobile apps: people sign in with OAuth 2 (authorization code + PKCE, Frappe's own provider) and
read the change feed, and write, with their own permissions; over real HTTP against the test
site's gunicorn."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import frappe

from erp_connect.install import CONNECT_MOBILE_USER
from erp_connect.testing.base import TEST_PREFIX, make_api_user
from erp_connect.testing.mobile import (
	OUTSIDER,
	PASSWORD,
	REP_A,
	REP_B,
	UPSERT,
	MobileTestCase,
	OAuthApp,
	make_oauth_client,
	pkce_pair,
	unrestrict,
)

JS_DIR = os.path.join(os.path.dirname(__file__), "js")


class TestMobileSignIn(MobileTestCase):
	def test_the_pkce_flow_gives_a_token_whose_feed_shows_only_the_users_own_documents(self):
		token = self.app.sign_in(REP_A)
		self.assertEqual((token["token_type"], token["expires_in"]), ("Bearer", 3600))
		self.assertTrue(token["refresh_token"])
		self.assertIn("id_token", token)  # scope openid
		self.assertEqual(
			frappe.db.get_value("OAuth Bearer Token", token["access_token"], ["user", "client"]),
			(REP_A, self.client.name),
		)
		http = self.app.bearer(token["access_token"])
		customers, _, _, _ = self.read_feed(http, "Customer")
		orders, _, _, _ = self.read_feed(http, "Sales Order")
		self.assertEqual(sorted(customers), sorted(self.customers[REP_A]))
		self.assertEqual(sorted(orders), sorted(self.orders[REP_A]))

		other = self.app.bearer(self.app.sign_in(REP_B)["access_token"])
		customers_b, _, _, _ = self.read_feed(other, "Customer", limit=1)  # keyset pages of one
		self.assertEqual(sorted(customers_b), sorted(self.customers[REP_B]))
		self.assertFalse(set(customers_b) & set(self.customers[REP_A]))

	def test_a_wrong_or_missing_verifier_and_a_replayed_code_are_refused(self):
		verifier, challenge = pkce_pair()
		code = self.app.code(REP_A, challenge)
		wrong = self.app.exchange(code, pkce_pair()[0])
		self.assertEqual(wrong.status_code, 400, wrong.text)
		self.assertEqual(wrong.json().get("error"), "invalid_grant")
		good = self.app.exchange(code, verifier)
		self.assertEqual(good.status_code, 200, good.text)
		replay = self.app.exchange(code, verifier)
		self.assertEqual(replay.status_code, 400, replay.text)
		self.assertNotIn("access_token", replay.json())

		verifier, challenge = pkce_pair()
		code = self.app.code(REP_A, challenge)
		missing = self.app.exchange(code, None)
		self.assertNotEqual(missing.status_code, 200, missing.text)
		self.assertNotIn("access_token", missing.json())
		late = self.app.exchange(code, verifier)  # an exchange without the verifier lost the code
		self.assertEqual(late.status_code, 400, late.text)
		self.assertEqual(
			frappe.db.count("OAuth Bearer Token", {"client": self.client.name}), 1
		)  # only the good exchange made a token

	def test_refresh_gives_a_working_token_and_a_revoked_token_is_shut_out(self):
		first = self.app.sign_in(REP_A)
		refreshed = self.app.refresh(first["refresh_token"])
		self.assertEqual(refreshed.status_code, 200, refreshed.text)
		second = refreshed.json()
		self.assertNotEqual(second["access_token"], first["access_token"])
		http = self.app.bearer(second["access_token"])
		self.assertEqual(self.feed(http, "Customer").status_code, 200)
		# a refresh token works once: the token it was refreshed from is over (rotation)
		self.assertEqual(self.feed(self.app.bearer(first["access_token"]), "Customer").status_code, 401)
		self.assertNotEqual(self.app.refresh(first["refresh_token"]).status_code, 200)
		self.assertEqual(self.feed(http, "Customer").status_code, 200)

		self.assertEqual(self.app.revoke(second["access_token"]).status_code, 200)
		refused = self.feed(http, "Customer")
		self.assertIn(refused.status_code, (401, 403), refused.text)
		self.assertNotIn("records", refused.text)
		# a Desk session of the same person gets no further, with the revoked token or without one
		desk = self.app.session()
		desk.post(f"{self.url}/api/method/login", data={"usr": REP_A, "pwd": PASSWORD}).raise_for_status()
		self.assertEqual(self.feed(desk, "Customer").status_code, 403)
		desk.headers["Authorization"] = f"Bearer {second['access_token']}"
		self.assertIn(self.feed(desk, "Customer").status_code, (401, 403))
		# revoking by the refresh token ends the access token issued with it, and its refreshes
		self.assertEqual(self.app.revoke(second["refresh_token"], "refresh_token").status_code, 200)
		self.assertNotEqual(self.app.refresh(second["refresh_token"]).status_code, 200)

	def test_without_skip_authorization_the_person_allows_the_app_on_frappes_confirm_page(self):
		# "Force": every client without Skip Authorization asks ("Auto" skips once any token is active)
		before = frappe.db.get_single_value("OAuth Provider Settings", "skip_authorization")
		frappe.db.set_single_value("OAuth Provider Settings", "skip_authorization", "Force")
		frappe.db.commit()
		self.addCleanup(
			lambda: (
				frappe.db.set_single_value(
					"OAuth Provider Settings", "skip_authorization", before or "Force"
				),
				frappe.db.commit(),
			)
		)
		client = make_oauth_client(skip_authorization=0)
		app = OAuthApp(client.name)
		token = app.sign_in(REP_A)
		self.assertIn(client.app_name, app.consent_page)  # "<app> wants to access ..." was shown
		self.assertEqual(frappe.db.get_value("OAuth Bearer Token", token["access_token"], "user"), REP_A)

	def test_the_openid_profile_is_the_signed_in_person(self):
		token = self.app.sign_in(REP_B)
		profile = self.app.bearer(token["access_token"]).get(
			f"{self.url}/api/method/frappe.integrations.oauth2.openid_profile"
		)
		self.assertEqual(profile.status_code, 200, profile.text)
		self.assertEqual(profile.json()["email"], REP_B)


class TestMobileAccess(MobileTestCase):
	def test_a_user_without_the_role_is_refused_and_changes_nothing(self):
		# the OAuth Client itself admits only Connect Mobile Users: the outsider gets no code
		response = self.app.authorize(OUTSIDER, pkce_pair()[1])
		self.assertFalse(response.headers.get("Location", "").startswith(self.app.redirect_uri))
		self.assertEqual(frappe.db.count("OAuth Authorization Code", {"client": self.client.name}), 0)

		# a client open to every user gives the outsider a token; the connector still refuses it
		open_client = make_oauth_client(allowed_roles=[{"role": "Sales User"}])
		self.connector.db_set("oauth_client", open_client.name)
		frappe.db.commit()
		app = OAuthApp(open_client.name)
		http = app.bearer(app.sign_in(OUTSIDER)["access_token"])
		orders_before = frappe.db.count("Sales Order")
		refused = self.feed(http, "Sales Order")
		self.assertEqual(refused.status_code, 403, refused.text)
		written = http.post(f"{self.url}{UPSERT}", json=self.order_record(self.customers[REP_A][0]))
		self.assertEqual(written.status_code, 403, written.text)
		self.assertEqual(frappe.db.count("Sales Order"), orders_before)

	def test_only_bearer_tokens_of_the_connectors_own_oauth_client_get_in(self):
		other = make_oauth_client()
		app = OAuthApp(other.name)
		refused = self.feed(app.bearer(app.sign_in(REP_A)["access_token"]), "Customer")
		self.assertEqual(refused.status_code, 403, refused.text)
		# a member's API key (a shared key) is no way in either
		key, secret = make_api_user(REP_A, [])
		session = self.app.session()
		session.headers["Authorization"] = f"token {key}:{secret}"
		self.assertEqual(self.feed(session, "Customer").status_code, 403)
		# nor is a doctype the connector does not list
		http = self.app.bearer(self.app.sign_in(REP_A)["access_token"])
		self.assertEqual(self.feed(http, "Item").status_code, 403)
		# and people read changes and upsert, nothing else of the connector's
		status = http.get(
			f"{self.url}/api/method/erp_connect.api.v1.status", params={"connector": self.connector.name}
		)
		self.assertEqual(status.status_code, 403, status.text)
		imported = http.post(
			f"{self.url}/api/method/erp_connect.api.v1.start_import",
			json=self.order_record(self.customers[REP_A][0]),
		)
		self.assertEqual(imported.status_code, 403, imported.text)
		self.assertFalse(frappe.db.exists("Sync Import", {"connector": self.connector.name}))

	def test_a_disabled_member_is_refused_whatever_token_it_holds(self):
		http = self.app.bearer(self.app.sign_in(REP_B)["access_token"])
		frappe.db.set_value("User", REP_B, "enabled", 0)
		frappe.db.commit()
		self.assertIn(self.feed(http, "Customer").status_code, (401, 403))

	def test_a_mobile_app_connector_needs_its_client_and_a_role_only_its_people_have(self):
		for fields, problem in (
			({"oauth_client": None}, "OAuth Client"),
			({"member_role": "System Manager"}, "Member Role"),
			({"member_role": "All"}, "Member Role"),
			({"api_user": "ec-api@example.com"}, "API User"),
		):
			with self.subTest(fields=fields):
				with self.assertRaisesRegex(frappe.ValidationError, problem):
					mobile = {"oauth_client": self.client.name, "member_role": CONNECT_MOBILE_USER}
					self.make_connector(connector_type="Mobile App", **{**mobile, **fields})

	def test_a_member_that_is_a_system_manager_is_refused(self):
		token = self.app.sign_in(REP_A)["access_token"]
		frappe.get_doc("User", REP_A).add_roles("System Manager")
		frappe.db.commit()
		self.addCleanup(
			lambda: (frappe.get_doc("User", REP_A).remove_roles("System Manager"), frappe.db.commit())
		)
		self.assertEqual(self.feed(self.app.bearer(token), "Customer").status_code, 403)

	def order_record(self, customer: str, external_id: str = "so-1") -> dict:
		return {
			"connector": self.connector.name,
			"doctype": "Sales Order",
			"records": [
				{
					"id": external_id,
					"customer": customer,
					"delivery_date": frappe.utils.add_days(frappe.utils.nowdate(), 3),
					"items": [{"item_code": self.item, "qty": 2, "rate": 5}],
				}
			],
		}

	def test_upsert_writes_as_the_person_with_their_own_permissions(self):
		http = self.app.bearer(self.app.sign_in(REP_A)["access_token"])
		own = http.post(f"{self.url}{UPSERT}", json=self.order_record(self.customers[REP_A][0], "so-a"))
		self.assertEqual(own.status_code, 200, own.text)
		[result] = own.json()["message"]["results"]
		self.assertEqual(result["status"], "created", result)
		self.assertEqual(frappe.db.get_value("Sales Order", result["name"], "owner"), REP_A)

		# an Idempotency-Key replays a person's own answer, never another person's
		body, key = self.order_record(self.customers[REP_A][1], "so-a2"), {"Idempotency-Key": "k-1"}
		first = http.post(f"{self.url}{UPSERT}", json=body, headers=key)
		replay = http.post(f"{self.url}{UPSERT}", json=body, headers=key).json()
		self.assertEqual(
			(replay["message"], replay.get("idempotent_replay")), (first.json()["message"], True)
		)
		rep_b = self.app.bearer(self.app.sign_in(REP_B)["access_token"])
		stolen = rep_b.post(f"{self.url}{UPSERT}", json=body, headers=key)
		self.assertEqual(stolen.status_code, 422, stolen.text)
		self.assertNotIn(first.json()["message"]["results"][0]["name"], stolen.text)
		# nor does an external id of someone else's document tell rep B anything, or change it
		for action in ("save", "cancel"):
			replayed = rep_b.post(f"{self.url}{UPSERT}", json={**body, "action": action}).json()["message"]
			[result] = replayed["results"]
			self.assertEqual(result["status"], "error", result)
			self.assertNotIn(first.json()["message"]["results"][0]["name"], json.dumps(replayed))

		foreign = http.post(f"{self.url}{UPSERT}", json=self.order_record(self.customers[REP_B][0], "so-b"))
		self.assertEqual(foreign.status_code, 200, foreign.text)
		[result] = foreign.json()["message"]["results"]
		self.assertEqual(result["status"], "error", result)
		self.assertFalse(
			frappe.db.exists("Sales Order", {"customer": self.customers[REP_B][0], "owner": REP_A})
		)


class TestMobileFeedFollowsPermissions(MobileTestCase):
	def test_a_customer_taken_away_leaves_the_feed(self):
		http = self.app.bearer(self.app.sign_in(REP_A)["access_token"])
		customers, _, resync, cursor = self.read_feed(http, "Customer")
		orders, _, _, order_cursor = self.read_feed(http, "Sales Order")
		self.assertEqual(sorted(customers), sorted(self.customers[REP_A]))
		self.assertFalse(resync)
		kept, lost = self.customers[REP_A]

		unrestrict(self.permissions[REP_A][1])  # rep A no longer looks after the second customer
		page = self.feed(http, "Customer", cursor).json()["message"]
		self.assertTrue(page["resync"], page)  # drop your copy, read again from the start
		self.assertEqual((page["records"], page["deleted"], page["has_more"]), ([], [], True))
		customers, _, _, cursor = self.read_feed(http, "Customer", page["cursor"])
		self.assertEqual(customers, [kept])
		orders, _, resync, _ = self.read_feed(http, "Sales Order", order_cursor)
		self.assertTrue(resync)
		self.assertEqual(orders, [self.orders[REP_A][0]])
		# and once the copy is rebuilt, the feed goes on as usual
		again, _, resync, _ = self.read_feed(http, "Customer", cursor)
		self.assertFalse(resync)
		self.assertNotIn(lost, again)

	def test_deletions_are_shown_only_for_the_users_own_documents(self):
		http = self.app.bearer(self.app.sign_in(REP_A)["access_token"])
		_, _, _, cursor = self.read_feed(http, "Sales Order")
		mine, theirs = self.orders[REP_A][1], self.orders[REP_B][1]
		frappe.delete_doc("Sales Order", mine, ignore_permissions=True)
		frappe.delete_doc("Sales Order", theirs, ignore_permissions=True)
		frappe.db.commit()
		_, deleted, _, _ = self.read_feed(http, "Sales Order", cursor)
		self.assertIn(mine, deleted)
		self.assertNotIn(theirs, deleted)


class TestFrappeJsSdk(MobileTestCase):
	"""The feed through the frappe-js-sdk npm client with an OAuth access token of this flow."""

	def test_the_js_sdk_reads_the_feed_with_a_bearer_token(self):
		node, npm = shutil.which("node"), shutil.which("npm")
		if not node or not npm:
			raise unittest.SkipTest("node and npm are needed for the frappe-js-sdk test")
		work = tempfile.mkdtemp(prefix="ec-mobile-js-")
		self.addCleanup(shutil.rmtree, work, True)
		for name in ("package.json", "package-lock.json", "mobile_feed.mjs"):
			shutil.copy(os.path.join(JS_DIR, name), work)
		installed = subprocess.run(
			[npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
			cwd=work,
			capture_output=True,
			text=True,
			timeout=300,
		)
		if installed.returncode:
			raise unittest.SkipTest(f"npm could not install frappe-js-sdk: {installed.stderr[-500:]}")
		token = self.app.sign_in(REP_B)["access_token"]

		def feed(*cursor: str) -> dict:
			run = subprocess.run(
				[
					node,
					"mobile_feed.mjs",
					self.url,
					frappe.local.site,
					token,
					self.connector.name,
					"Customer",
					*cursor,
				],
				cwd=work,
				capture_output=True,
				text=True,
				timeout=120,
			)
			self.assertEqual(run.returncode, 0, run.stderr)
			return json.loads(run.stdout)

		out = feed()
		self.assertEqual(out["user"], REP_B)
		self.assertEqual(sorted(out["names"]), sorted(self.customers[REP_B]))
		self.assertTrue(all(n.startswith(TEST_PREFIX) for n in out["names"]))
		self.assertEqual(out["resyncs"], 0)
		# rep B loses a customer: the app, following its cursor, resyncs and keeps only the other
		unrestrict(self.permissions[REP_B][1])
		out = feed(out["cursor"])
		self.assertEqual((out["resyncs"], out["names"]), (1, [self.customers[REP_B][0]]))
