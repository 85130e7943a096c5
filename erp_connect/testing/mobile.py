"""Mobile apps in the tests: people (sales reps) who sign in with their own password, an OAuth
Client of Frappe's own OAuth provider, the authorization code flow with PKCE over real HTTP, and
a Mobile App connector whose feed runs with each person's own permissions."""

import base64
import hashlib
import html
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import frappe
import requests
from frappe.utils import add_days, nowdate

from erp_connect.install import CONNECT_MOBILE_USER
from erp_connect.testing.base import (
	TEST_PREFIX,
	ConnectTestCase,
	company,
	make_customer,
	make_item,
	site_http,
)
from erp_connect.testing.cleanup import delete_test_data

# people made by the tests: their names match testing/cleanup.py's MOBILE_USERS
REP_A = "ec-mobile-rep-a@example.com"
REP_B = "ec-mobile-rep-b@example.com"
OUTSIDER = "ec-mobile-outsider@example.com"  # a Sales User without the mobile role
PASSWORD = "Ec-Mobile-Test-2026!"
REDIRECT_URI = "com.example.erpmobile:/oauth/callback"  # a mobile app's own URL scheme
AUTHORIZE = "/api/method/frappe.integrations.oauth2.authorize"
TOKEN = "/api/method/frappe.integrations.oauth2.get_token"
REVOKE = "/api/method/frappe.integrations.oauth2.revoke_token"
CHANGES = "/api/method/erp_connect.api.v1.changes"
UPSERT = "/api/method/erp_connect.api.v1.upsert"
# Frappe's Confirm Access page: the Allow button goes to this URL
ALLOW = re.compile(
	r"\$\('#allow'\)\.on\('click', function\(event\) \{\s*window\.location\.replace\(\"([^\"]+)\"\)"
)


def make_person(email: str, roles: list[str]) -> str:
	"""A committed, enabled System User with a password and ``roles`` (and nothing else)."""
	if not frappe.db.exists("User", email):
		frappe.get_doc(
			{
				"doctype": "User",
				"email": email,
				"first_name": "Rep",
				"send_welcome_email": 0,
				"user_type": "System User",
				"new_password": PASSWORD,
			}
		).insert(ignore_permissions=True)
	user = frappe.get_doc("User", email)
	user.add_roles(*roles)
	frappe.db.commit()
	return email


def restrict(user: str, doctype: str, value: str) -> str:
	"""A committed User Permission: ``user`` sees only the ``doctype`` documents it lists (and
	documents linking to them)."""
	doc = frappe.get_doc(
		{
			"doctype": "User Permission",
			"user": user,
			"allow": doctype,
			"for_value": value,
			"apply_to_all_doctypes": 1,
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	return doc.name


def unrestrict(name: str) -> None:
	frappe.delete_doc("User Permission", name, ignore_permissions=True)
	frappe.db.commit()


def make_oauth_client(redirect_uri: str = REDIRECT_URI, **fields) -> "frappe.Document":
	"""An OAuth Client of Frappe's provider as the README registers one for a mobile app."""
	doc = frappe.get_doc(
		{
			"doctype": "OAuth Client",
			"app_name": TEST_PREFIX + "Mobile " + frappe.generate_hash(length=6),
			"scopes": "all openid",
			"redirect_uris": redirect_uri,
			"default_redirect_uri": redirect_uri,
			"grant_type": "Authorization Code",
			"response_type": "Code",
			"skip_authorization": 1,
			"allowed_roles": [{"role": CONNECT_MOBILE_USER}],
			**fields,
		}
	).insert(ignore_permissions=True)
	frappe.db.commit()
	return doc


def make_sales_order(customer: str, item: str, submit: bool = False) -> "frappe.Document":
	order = frappe.get_doc(
		{
			"doctype": "Sales Order",
			"company": company(),
			"customer": customer,
			"transaction_date": nowdate(),
			"delivery_date": add_days(nowdate(), 7),
			"items": [{"item_code": item, "qty": 1, "rate": 10}],
		}
	).insert(ignore_permissions=True)
	if submit:
		order.submit()
	frappe.db.commit()
	return order


def pkce_pair() -> tuple[str, str]:
	"""(code_verifier, code_challenge) as RFC 7636 S256 makes them."""
	verifier = secrets.token_urlsafe(48)
	digest = hashlib.sha256(verifier.encode()).digest()
	return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OAuthApp:
	"""What a mobile app does, over real HTTP: the person logs in (in the system browser), the app
	asks for a code with a PKCE challenge, takes it from the redirect, and trades it for tokens."""

	def __init__(self, client_id: str, redirect_uri: str = REDIRECT_URI):
		self.client_id = client_id
		self.redirect_uri = redirect_uri
		self.url, _ = site_http()

	def session(self) -> requests.Session:
		return site_http()[1]

	def authorize(self, user: str, challenge: str, password: str = PASSWORD) -> requests.Response:
		"""Log in as ``user`` and GET authorize; the last response (a redirect to the app, or
		an error) without following it to the app's own URL scheme."""
		browser = self.session()
		login = browser.post(f"{self.url}/api/method/login", data={"usr": user, "pwd": password})
		assert login.status_code == 200, login.text
		params = {
			"client_id": self.client_id,
			"response_type": "code",
			"redirect_uri": self.redirect_uri,
			"scope": "all openid",
			"state": "st-" + frappe.generate_hash(length=8),
			"code_challenge": challenge,
			"code_challenge_method": "S256",
		}
		response = browser.get(f"{self.url}{AUTHORIZE}", params=params, allow_redirects=False)
		self.consent_page = None
		for _ in range(5):  # authorize → (the Confirm Access page: Allow) → approve → the app
			location = response.headers.get("Location", "")
			allow = response.status_code == 200 and ALLOW.search(response.text)
			if allow:  # a client without Skip Authorization: the person presses Allow
				self.consent_page = response.text
				location = html.unescape(allow.group(1))
			elif response.status_code not in (301, 302, 303) or location.startswith(self.redirect_uri):
				break
			response = browser.get(
				location if location.startswith("http") else self.url + location, allow_redirects=False
			)
		response.state = params["state"]
		return response

	def code(self, user: str, challenge: str) -> str:
		response = self.authorize(user, challenge)
		location = response.headers.get("Location", "")
		assert location.startswith(self.redirect_uri), (response.status_code, location, response.text[:500])
		query = parse_qs(urlsplit(location).query)
		assert query["state"] == [response.state], query
		return query["code"][0]

	def exchange(self, code: str, verifier: str | None) -> requests.Response:
		data = {
			"grant_type": "authorization_code",
			"code": code,
			"redirect_uri": self.redirect_uri,
			"client_id": self.client_id,
		}
		if verifier is not None:
			data["code_verifier"] = verifier
		return self.session().post(f"{self.url}{TOKEN}", data=data)

	def sign_in(self, user: str) -> dict:
		"""The whole flow; the token response (access_token, refresh_token, expires_in, ...)."""
		verifier, challenge = pkce_pair()
		response = self.exchange(self.code(user, challenge), verifier)
		assert response.status_code == 200, response.text
		return response.json()

	def refresh(self, refresh_token: str) -> requests.Response:
		data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": self.client_id}
		return self.session().post(f"{self.url}{TOKEN}", data=data)

	def revoke(self, token: str, hint: str = "access_token") -> requests.Response:
		data = {"token": token, "token_type_hint": hint, "client_id": self.client_id}
		return self.session().post(f"{self.url}{REVOKE}", data=data)

	def bearer(self, access_token: str) -> requests.Session:
		session = self.session()
		session.headers["Authorization"] = f"Bearer {access_token}"
		return session


class MobileTestCase(ConnectTestCase):
	"""Two sales reps, each restricted by User Permissions to their own two customers (with a
	sales order each), an outsider without the mobile role, an OAuth Client and a Mobile App
	connector that reads Customers and Sales Orders."""

	def setUp(self):
		super().setUp()
		self.addCleanup(delete_test_data)
		roles = ["Sales User", CONNECT_MOBILE_USER]
		make_person(REP_A, roles)
		make_person(REP_B, roles)
		make_person(OUTSIDER, ["Sales User"])
		self.client = make_oauth_client()
		self.app = OAuthApp(self.client.name)
		self.connector = self.make_connector(
			connector_type="Mobile App",
			oauth_client=self.client.name,
			member_role=CONNECT_MOBILE_USER,
			allowed_doctypes=[
				{"reference_doctype": "Customer", "can_read": 1},
				{
					"reference_doctype": "Sales Order",
					"can_create": 1,
					"can_update": 1,
					"can_cancel": 1,
					"can_read": 1,
				},
			],
		)
		self.item = make_item().name
		self.customers, self.orders, self.permissions = {}, {}, {}
		for rep in (REP_A, REP_B):
			tag = rep.split("@")[0][-1].upper()
			self.customers[rep] = [make_customer(f"{TEST_PREFIX}Rep {tag} Customer {i}").name for i in (1, 2)]
			self.orders[rep] = [make_sales_order(c, self.item).name for c in self.customers[rep]]
			self.permissions[rep] = [restrict(rep, "Customer", c) for c in self.customers[rep]]
		frappe.db.commit()
		self.url = self.app.url

	def feed(self, http: requests.Session, doctype: str, cursor: str | None = None, limit: int = 100):
		return http.get(
			f"{self.url}{CHANGES}",
			params={"connector": self.connector.name, "doctype": doctype, "cursor": cursor, "limit": limit},
		)

	def read_feed(self, http: requests.Session, doctype: str, cursor: str | None = None, limit: int = 100):
		"""Every page until has_more is false: (names seen, deleted names, resync seen, cursor)."""
		names, deleted, resync = [], [], False
		for _ in range(200):
			response = self.feed(http, doctype, cursor, limit)
			assert response.status_code == 200, response.text
			page = response.json()["message"]
			if page.get("resync"):
				resync, names, deleted = True, [], []  # drop the copy, read again from the start
			names += [r["name"] for r in page["records"]]
			deleted += [d["name"] for d in page["deleted"]]
			cursor = page["cursor"]
			if not page["has_more"]:
				return names, deleted, resync, cursor
		raise AssertionError("the feed did not end")
