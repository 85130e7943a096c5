"""The guest webhook receiver over real HTTP: signatures, freshness, one delivery id processed
once, and processing through the upsert path."""

import base64
import hashlib
import hmac
import json
import time

import frappe

from erp_connect.engine import signing
from erp_connect.services.inbound import inbox
from erp_connect.testing.base import TEST_PREFIX, our_customers, site_http, start_worker
from erp_connect.testing.inbound import API_USER, InboundTestCase

SECRET = signing.generate_secret()
SHOP_SECRET = "shpss_test_secret"


def envelope(external_id: str, name: str) -> bytes:
	data = {"id": external_id, "name": TEST_PREFIX + name, "type": "company"}
	return json.dumps(
		{"type": "customer.created", "timestamp": "2026-11-24T10:00:00Z", "data": data}
	).encode()


class TestReceive(InboundTestCase):
	def setUp(self):
		super().setUp()
		connector = frappe.get_doc("Connector", self.connector.name)
		connector.update({"receive_doctype": "Customer", "receive_secret": SECRET})
		connector.save()
		frappe.db.commit()
		self.guest_url, self.guest = site_http()

	def post(self, body: bytes, headers: dict, connector: str | None = None, content_type="application/json"):
		return self.guest.post(
			f"{self.guest_url}/api/method/erp_connect.api.v1.receive",
			params={"connector": connector or self.connector.name},
			data=body,
			headers={"Content-Type": content_type, **headers},
		)

	def requests_stored(self) -> list:
		frappe.db.commit()
		return frappe.get_all(
			"Inbound Request", {"connector": self.connector.name}, ["name", "status", "error"]
		)

	def test_a_signed_webhook_lands_exactly_once_even_if_delivered_three_times(self):
		body = envelope("wh-1", "webhook customer")
		headers = signing.signature_headers(SECRET, "msg_wh_1", body)
		answers = [self.post(body, headers) for _ in range(3)]
		self.assertEqual([a.status_code for a in answers], [200] * 3, answers[0].text)
		self.assertEqual(
			[a.json()["message"]["status"] for a in answers], ["received", "duplicate", "duplicate"]
		)
		[stored] = self.requests_stored()
		worker = start_worker(burst=True)  # processes the job the web server enqueued
		worker.wait(timeout=120)
		[stored] = self.requests_stored()
		self.assertEqual(stored.status, "Processed", stored.error)
		self.assertEqual(our_customers(), 1)
		owner = frappe.db.get_value("Customer", {"customer_name": TEST_PREFIX + "webhook customer"}, "owner")
		self.assertEqual(owner, API_USER)  # written as the connector's API user

	def test_bad_stale_or_unsigned_webhooks_are_refused_and_nothing_is_stored(self):
		body = envelope("wh-2", "refused")
		good = signing.signature_headers(SECRET, "msg_wh_2", body)
		cases = {
			"wrong secret": signing.signature_headers(signing.generate_secret(), "msg_wh_2", body),
			"stale": signing.signature_headers(SECRET, "msg_wh_2", body, timestamp=int(time.time()) - 600),
			"changed body": good,
			"unsigned": {},
		}
		for label, headers in cases.items():
			with self.subTest(label):
				sent = body + b" " if label == "changed body" else body
				response = self.post(sent, headers)
				self.assertEqual(response.status_code, 401, response.text)
		self.assertEqual(self.requests_stored(), [])

	def test_connectors_that_do_not_receive_answer_404(self):
		body = envelope("wh-3", "nowhere")
		headers = signing.signature_headers(SECRET, "msg_wh_3", body)
		self.assertEqual(self.post(body, headers, connector="no such connector").status_code, 404)
		frappe.db.set_value("Connector", self.connector.name, "receive_doctype", None)
		frappe.db.commit()
		self.assertEqual(self.post(body, headers).status_code, 404)

	def test_oversized_bodies_are_refused(self):
		body = b'{"data": "' + b"x" * (inbox.MAX_BODY_BYTES + 10) + b'"}'
		response = self.post(body, signing.signature_headers(SECRET, "msg_big", body))
		self.assertEqual(response.status_code, 413)
		self.assertEqual(self.requests_stored(), [])

	def test_hmac_header_scheme_like_shopify(self):
		self.use_shopify_scheme()
		body = json.dumps({"id": "shop-1", "name": TEST_PREFIX + "shopify", "type": "company"}).encode()
		digest = base64.b64encode(hmac.new(SHOP_SECRET.encode(), body, hashlib.sha256).digest()).decode()
		headers = {"X-Shopify-Hmac-Sha256": digest, "X-Shopify-Webhook-Id": "b54557e4"}
		self.assertEqual(self.post(body, headers).json()["message"]["status"], "received")
		self.assertEqual(self.post(body, headers).json()["message"]["status"], "duplicate")
		self.assertEqual(self.post(body, {**headers, "X-Shopify-Hmac-Sha256": "AAAA"}).status_code, 401)
		[stored] = self.requests_stored()
		inbox.process(stored.name)
		self.assertEqual(self.requests_stored()[0].status, "Processed")
		self.assertEqual(our_customers(), 1)

	def test_a_body_signed_once_cannot_be_replayed_under_a_new_delivery_id(self):
		# under a scheme that signs only the body, whoever holds one signed body could send it
		# again with any delivery id, and roll the document back to it
		self.use_shopify_scheme()
		body = json.dumps({"id": "shop-2", "name": TEST_PREFIX + "replayed", "type": "company"}).encode()
		digest = base64.b64encode(hmac.new(SHOP_SECRET.encode(), body, hashlib.sha256).digest()).decode()
		first = self.post(body, {"X-Shopify-Hmac-Sha256": digest, "X-Shopify-Webhook-Id": "id-1"})
		self.assertEqual(first.json()["message"]["status"], "received")
		replay = self.post(body, {"X-Shopify-Hmac-Sha256": digest, "X-Shopify-Webhook-Id": "id-2"})
		self.assertEqual(replay.status_code, 200, replay.text)
		self.assertEqual(replay.json()["message"]["status"], "duplicate")
		self.assertEqual(len(self.requests_stored()), 1)

	def test_bodies_that_cannot_be_processed_are_refused_and_not_stored(self):
		records = [{"id": f"r{i}", "name": f"{TEST_PREFIX}r{i}", "type": "company"} for i in range(1001)]
		# (sent as application/json, a body that is not JSON is answered 500 by Frappe's own request
		# parsing before any app code runs)
		for body, status in ((b"not json at all", 400), (json.dumps(records).encode(), 413)):
			with self.subTest(status=status):
				headers = signing.signature_headers(SECRET, f"msg_{status}", body)
				response = self.post(body, headers, content_type="text/plain")
				self.assertEqual(response.status_code, status, response.text)
		self.assertEqual(self.requests_stored(), [])

	def use_shopify_scheme(self):
		connector = frappe.get_doc("Connector", self.connector.name)
		connector.update(
			{
				"receive_scheme": "HMAC-SHA256 Header",
				"receive_secret": SHOP_SECRET,
				"receive_signature_header": "X-Shopify-Hmac-Sha256",
				"receive_id_header": "X-Shopify-Webhook-Id",
			}
		)
		connector.save()
		frappe.db.commit()

	def test_a_failed_delivery_is_kept_with_its_error_and_processed_again_once_fixed(self):
		frappe.db.set_value(
			"Connector Access",
			{"parent": self.connector.name, "reference_doctype": "Customer"},
			"can_create",
			0,
		)
		frappe.db.commit()
		body = envelope("wh-4", "later")
		self.post(body, signing.signature_headers(SECRET, "msg_wh_4", body))
		[stored] = self.requests_stored()
		inbox.process(stored.name)
		[failed] = self.requests_stored()
		self.assertEqual(failed.status, "Failed")
		self.assertIn("may not create Customer", failed.error)
		self.assertTrue(frappe.db.get_value("Inbound Request", failed.name, "next_attempt_at"))

		frappe.db.set_value(
			"Connector Access",
			{"parent": self.connector.name, "reference_doctype": "Customer"},
			"can_create",
			1,
		)
		frappe.db.commit()
		inbox.process(failed.name)
		self.assertEqual(self.requests_stored()[0].status, "Processed")
		self.assertEqual(our_customers(), 1)

	def test_a_webhook_for_a_connector_whose_api_user_fails_the_check_fails_with_the_reason(self):
		frappe.db.set_value("Connector", self.connector.name, "api_user", "Administrator")
		frappe.db.commit()
		body = envelope("wh-admin", "as admin")
		self.post(body, signing.signature_headers(SECRET, "msg_wh_admin", body))
		[stored] = self.requests_stored()
		inbox.process(stored.name)
		[failed] = self.requests_stored()
		self.assertEqual(failed.status, "Failed")
		self.assertIn("Administrator may not write for a connector", failed.error)
		self.assertEqual(our_customers(), 0)

	def test_connector_validation_for_receiving(self):
		connector = frappe.get_doc("Connector", self.connector.name)
		connector.receive_secret = "not-whsec"
		with self.assertRaisesRegex(frappe.ValidationError, "must start with 'whsec_'"):
			connector.save()
		connector.reload()
		connector.api_user = None
		with self.assertRaisesRegex(frappe.ValidationError, "needs: API User"):
			connector.save()
		for doctype, reason in (
			("Item", "add Item to its Allowed DocTypes"),
			("User", "User cannot be synced"),
		):
			connector = frappe.get_doc("Connector", self.connector.name)
			connector.receive_doctype = doctype
			with self.assertRaisesRegex(frappe.ValidationError, reason):
				connector.save()
