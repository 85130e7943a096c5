# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import json
import os

import frappe
from frappe.utils import add_to_date, now_datetime

from erp_connect.engine import signing
from erp_connect.testing.base import (
	TEST_PREFIX,
	ConnectTestCase,
	make_api_user,
	site_http,
)
from erp_connect.testing.cleanup import delete_test_data
from erp_connect.testing.remote import Reply

BEARER = "plain-bearer-token-4f1e9a"


class TestConnector(ConnectTestCase):
	fake_remote = True

	def test_valid_connector_saves_and_reads_back(self):
		doc = self.make_connector(base_url=self.remote.url + "/hooks/", timeout_seconds=3)
		saved = frappe.get_doc("Connector", doc.name)
		self.assertEqual(saved.base_url, self.remote.url + "/hooks")  # trailing slash trimmed
		self.assertEqual(saved.timeout_seconds, 3)
		self.assertEqual(saved.url_for("orders"), self.remote.url + "/hooks/orders")

	def test_malformed_urls_are_rejected_with_a_clear_message(self):
		for url, reason in [
			("shop.example.com", "http:// or https://"),
			("ftp://shop.example.com", "http:// or https://"),
			("https://", "no host name"),
			("https://shop example.com", "white space"),
		]:
			with self.subTest(url=url):
				with self.assertRaisesRegex(frappe.ValidationError, reason):
					self.make_connector(base_url=url)

	def test_each_auth_type_demands_its_secret(self):
		for auth_type, missing in [
			("Bearer Token", "Bearer Token"),
			("API Key Header", "API Key Header, API Key"),
			("Basic", "Username, Password"),
			("Frappe Token", "API Key, API Secret"),
			("OAuth 2.0", "Connected App"),
		]:
			with self.subTest(auth_type=auth_type):
				with self.assertRaisesRegex(frappe.ValidationError, f"needs: {missing}"):
					self.make_connector(auth_type=auth_type)

	def test_malformed_signing_secret_is_rejected(self):
		with self.assertRaisesRegex(frappe.ValidationError, "must start with 'whsec_'"):
			self.make_connector(signing_secret="not-a-secret")
		with self.assertRaisesRegex(frappe.ValidationError, "valid base64"):
			self.make_connector(signing_secret="whsec_@@@")

	def test_nothing_is_written_when_validation_fails(self):
		before = frappe.db.count("Connector")
		with self.assertRaises(frappe.ValidationError):
			self.make_connector(auth_type="Bearer Token")
		self.assertEqual(frappe.db.count("Connector"), before)

	def test_secrets_are_encrypted_and_never_returned_in_plain_text(self):
		whsec = signing.generate_secret()
		doc = self.make_connector(auth_type="Bearer Token", bearer_token=BEARER, signing_secret=whsec)
		reloaded = frappe.get_doc("Connector", doc.name)
		dumped = json.dumps(reloaded.as_dict(), default=str)
		self.assertNotIn(BEARER, dumped)
		self.assertNotIn(whsec, dumped)
		self.assertNotIn(
			BEARER, json.dumps(frappe.db.get_value("Connector", doc.name, "*", as_dict=True), default=str)
		)
		# stored encrypted in __Auth, not as plain text
		stored = frappe.db.sql(
			"select password from `__Auth` where doctype=%s and name=%s and fieldname=%s",
			("Connector", doc.name, "bearer_token"),
		)[0][0]
		self.assertNotEqual(stored, BEARER)
		self.assertEqual(reloaded.secret("bearer_token"), BEARER)
		self.assertEqual(reloaded.secret("signing_secret"), whsec)
		self.assertEqual(reloaded.auth_headers(), {"Authorization": f"Bearer {BEARER}"})

	def test_saving_again_keeps_the_stored_secret(self):
		doc = self.make_connector(auth_type="Bearer Token", bearer_token=BEARER)
		doc = frappe.get_doc("Connector", doc.name)
		doc.timeout_seconds = 5
		doc.save()
		self.assertEqual(frappe.get_doc("Connector", doc.name).secret("bearer_token"), BEARER)

	def test_rest_api_does_not_return_secrets(self):
		self.addCleanup(delete_test_data)
		whsec = signing.generate_secret()
		doc = self.make_connector(auth_type="Bearer Token", bearer_token=BEARER, signing_secret=whsec)
		api_key, api_secret = make_api_user("ec-manager@example.com", ["Connect Manager"])
		frappe.db.commit()

		url, http = site_http(api_key, api_secret)
		response = http.get(f"{url}/api/resource/Connector/{doc.name}")
		self.assertEqual(response.status_code, 200, response.text)
		self.assertEqual(response.json()["data"]["base_url"], self.remote.url)
		self.assertNotIn(BEARER, response.text)
		self.assertNotIn(whsec, response.text)

	def test_users_without_the_role_cannot_read_connectors(self):
		self.addCleanup(delete_test_data)
		doc = self.make_connector()
		api_key, api_secret = make_api_user("ec-nobody@example.com", [])
		frappe.db.commit()
		url, http = site_http(api_key, api_secret)
		self.assertEqual(http.get(f"{url}/api/resource/Connector/{doc.name}").status_code, 403)


class TestOAuthConnector(ConnectTestCase):
	fake_remote = True

	def test_oauth_uses_the_connected_apps_token_and_frappe_refreshes_it(self):
		os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # the token endpoint is plain http on loopback
		self.addCleanup(os.environ.pop, "OAUTHLIB_INSECURE_TRANSPORT", None)
		app = frappe.get_doc(
			{
				"doctype": "Connected App",
				"provider_name": TEST_PREFIX + "oauth",
				"client_id": "client-1",
				"client_secret": "client-secret-1",
				"authorization_uri": self.remote.url + "/authorize",
				"token_uri": self.remote.url + "/token",
			}
		).insert()
		connector = self.make_connector(auth_type="OAuth 2.0", connected_app=app.name)
		token = frappe.get_doc(
			{
				"doctype": "Token Cache",
				"connected_app": app.name,
				"user": connector.owner,
				"access_token": "access-1",
				"refresh_token": "refresh-1",
				"token_type": "Bearer",
				"expires_in": 3600,
			}
		).insert(ignore_permissions=True)
		self.assertEqual(connector.auth_headers(), {"Authorization": "Bearer access-1"})

		# once the token has expired, Frappe refreshes it at the provider's token endpoint
		frappe.db.set_value(
			"Token Cache",
			token.name,
			"modified",
			add_to_date(now_datetime(), hours=-2),
			update_modified=False,
		)
		self.remote.script(
			"/token",
			Reply(
				200,
				{
					"access_token": "access-2",
					"refresh_token": "refresh-2",
					"token_type": "Bearer",
					"expires_in": 3600,
				},
			),
		)
		self.assertEqual(connector.auth_headers(), {"Authorization": "Bearer access-2"})
		[refresh] = self.remote.received("/token")
		self.assertIn(b"grant_type=refresh_token", refresh.body)
		self.assertIn(b"refresh-1", refresh.body)

	def test_oauth_without_an_authorized_token_says_so(self):
		app = frappe.get_doc(
			{"doctype": "Connected App", "provider_name": TEST_PREFIX + "oauth2", "client_id": "c"}
		).insert()
		connector = self.make_connector(auth_type="OAuth 2.0", connected_app=app.name)
		with self.assertRaisesRegex(frappe.ValidationError, "authorize it first"):
			connector.auth_headers()
