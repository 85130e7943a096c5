"""Shipping through an EasyPost-style carrier, end to end in the real site: a submitted Delivery
Note becomes one shipment at the fake carrier (testing/carrier.py, a real HTTP server) through the
outbox and the drain, whatever fails on the way, and the carrier's signed tracking webhooks move
the note's shipping status through the receiver and the upsert path."""

import json
from unittest.mock import patch

import frappe
from frappe.utils import convert_utc_to_system_timezone, get_datetime

from erp_connect.engine import signing
from erp_connect.engine.retry import Outcome, Verdict
from erp_connect.engine.transports import SendResult, WebhookTransport, easypost
from erp_connect.install import CONNECT_API_USER, SHIPMENT_TRACKER
from erp_connect.services.ops.setup import apply_preset
from erp_connect.services.push import delivery, events
from erp_connect.testing.base import (
	TEST_PREFIX,
	ConnectTestCase,
	company,
	make_api_user,
	make_customer,
	make_item,
	site_http,
	start_worker,
)
from erp_connect.testing.carrier import FakeCarrier
from erp_connect.testing.cleanup import delete_test_data
from erp_connect.testing.inbound import process_received
from erp_connect.testing.push import PushTestCase

API_KEY = "EZTK_site_test_key"
RECEIVE_SECRET = "ep_webhook_secret_\u00e9"  # EasyPost normalizes it (NFKD) before signing
CARRIER_USER = "ec-carrier@example.com"
OURS = ("like", TEST_PREFIX + "%")


def make_address(title: str, link_doctype: str, link_name: str, **fields) -> str:
	return (
		frappe.get_doc(
			{
				"doctype": "Address",
				"address_title": TEST_PREFIX + title,
				"address_type": fields.pop("address_type", "Shipping"),
				"address_line1": fields.pop("address_line1", "1 Main St"),
				"city": fields.pop("city", "Memphis"),
				"state": fields.pop("state", "TN"),
				"pincode": fields.pop("pincode", "38103"),
				"country": "United States",
				"links": [{"link_doctype": link_doctype, "link_name": link_name}],
				**fields,
			}
		)
		.insert(ignore_permissions=True)
		.name
	)


class TestShipping(ConnectTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.carrier = FakeCarrier(api_key=API_KEY).start()
		cls.addClassCleanup(cls.carrier.stop)
		make_api_user(CARRIER_USER, [CONNECT_API_USER, SHIPMENT_TRACKER])
		if not frappe.db.exists("Country", "United States"):
			raise RuntimeError("the test site has no Country 'United States'")

	def setUp(self):
		super().setUp()
		self.addCleanup(delete_test_data)
		self.carrier.reset()
		self.connector = self.make_connector(
			connector_type="EasyPost",
			base_url=self.carrier.url,
			auth_type="Basic",
			username=API_KEY,
			password="unused",
			timeout_seconds=2,
		)
		self.setup_result = apply_preset(self.connector.name, "Carrier (EasyPost)")
		connector = frappe.get_doc("Connector", self.connector.name)
		connector.update(
			{
				"api_user": CARRIER_USER,
				"receive_doctype": "Shipment Tracking Event",
				"receive_secret": RECEIVE_SECRET,
			}
		)
		connector.save()
		frappe.cache.delete_value(delivery._backoff_key(self.connector.name))
		self.customer = make_customer()
		self.ship_to = make_address("ship to", "Customer", self.customer.name, address_line1="1 Main St")
		self.ship_from = make_address(
			"warehouse",
			"Company",
			company(),
			address_type="Billing",
			address_line1="9 Dock Rd",
			city="Austin",
			state="TX",
			pincode="78701",
			is_your_company_address=1,
		)
		self.heavy = make_item(weight_per_unit=0.5, weight_uom=self.uom("Kg"))
		self.light = make_item(weight_per_unit=4, weight_uom=self.uom("Ounce"))
		frappe.db.commit()

	@staticmethod
	def uom(name: str) -> str:
		if not frappe.db.exists("UOM", name):
			frappe.get_doc({"doctype": "UOM", "uom_name": name}).insert(ignore_permissions=True)
		return name

	# -- helpers ------------------------------------------------------------------------------------
	def submit_note(self, items=None) -> "frappe.Document":
		note = frappe.get_doc(
			{
				"doctype": "Delivery Note",
				"company": company(),
				"customer": self.customer.name,
				"shipping_address_name": self.ship_to,
				"company_address": self.ship_from,
				"items": [
					{"item_code": code, "qty": qty, "rate": 10}
					for code, qty in (items or [(self.heavy.name, 2), (self.light.name, 3)])
				],
			}
		)
		note.insert()
		note.submit()
		frappe.db.commit()
		return note

	def events_of(self, note) -> list:
		frappe.db.commit()
		return frappe.get_all(
			"Sync Event",
			{
				"reference_doctype": "Delivery Note",
				"reference_name": note.name,
				"connector": self.connector.name,
			},
			["*"],
			order_by="seq asc",
		)

	def shipping(self, note) -> dict:
		frappe.db.commit()
		return frappe.db.get_value(
			"Delivery Note",
			note.name,
			[
				"ec_shipment_id",
				"ec_tracking_number",
				"ec_label_url",
				"ec_carrier",
				"ec_shipping_status",
				"ec_shipping_status_at",
			],
			as_dict=True,
		)

	def shipped_note(self) -> tuple["frappe.Document", str]:
		note = self.submit_note()
		self.drain()
		return note, self.shipping(note).ec_tracking_number

	def receive(self, event: dict, signature: str | None = None):
		url, session = site_http()
		answer = self.carrier.send_tracker_update(
			f"{url}/api/method/erp_connect.api.v1.receive?connector={self.connector.name}",
			RECEIVE_SECRET,
			event,
			signature=signature,
			headers={"Host": session.headers["Host"]},  # the site is chosen by host name
		)
		return answer

	def process_received(self) -> list:
		return process_received(self.connector.name)

	def history(self, note) -> list:
		return frappe.get_all(
			"Shipment Tracking Event",
			{"delivery_note": note.name},
			["status", "event_time", "message", "location", "carrier", "carrier_detail"],
			order_by="event_time asc",
		)

	# -- creating the shipment ------------------------------------------------------------------------
	def test_a_submitted_delivery_note_becomes_one_shipment_and_keeps_its_tracking_number_and_label(self):
		note = self.submit_note()
		[event] = self.events_of(note)
		self.assertEqual(event.status, "Pending")  # written in the submit's own transaction
		self.assertEqual(self.carrier.requests, [])  # nothing talks to the carrier during the submit
		self.drain()
		[shipment] = self.carrier.shipments.values()
		self.assertEqual(shipment["reference"], event.event_id)
		# 2 x 0.5 kg = 35.27 oz, plus 3 x 4 oz
		self.assertEqual(shipment["parcel"]["weight"], 47.3)
		self.assertEqual(
			{
				k: shipment["to_address"].get(k)
				for k in ("name", "street1", "city", "state", "zip", "country")
			},
			{
				"name": self.customer.customer_name,
				"street1": "1 Main St",
				"city": "Memphis",
				"state": "TN",
				"zip": "38103",
				"country": "US",
			},
		)
		self.assertEqual(
			{k: shipment["from_address"].get(k) for k in ("company", "street1", "city", "zip", "country")},
			{"company": company(), "street1": "9 Dock Rd", "city": "Austin", "zip": "78701", "country": "US"},
		)
		stored = self.shipping(note)
		self.assertEqual(stored.ec_shipment_id, shipment["id"])
		self.assertEqual(stored.ec_tracking_number, shipment["tracking_code"])
		self.assertEqual(stored.ec_label_url, shipment["postage_label"]["label_url"])
		self.assertEqual(stored.ec_carrier, "USPS Priority")  # the cheapest rate was bought
		[event] = self.events_of(note)
		self.assertEqual(event.status, "Delivered")
		self.assertIn(shipment["tracking_code"], event.last_response)
		# nothing more to do: a second drain sends nothing
		requests_before = len(self.carrier.requests)
		self.drain()
		self.assertEqual(len(self.carrier.requests), requests_before)
		self.assertEqual(self.carrier.bought, 1)

	def test_the_drains_lease_covers_the_three_requests_of_one_shipment(self):
		drainer = delivery.Drainer(self.connector.name)
		self.assertEqual(drainer.timeout, 3 * 2)  # lookup, create, buy: each may take the 2 s timeout
		self.assertEqual(drainer.lease_seconds, 3 * 6 + 5)

	def test_the_carrier_answering_500_then_ok_creates_one_shipment(self):
		self.carrier.fail("create", 500)
		note = self.submit_note()
		self.drain()
		[event] = self.events_of(note)
		self.assertEqual((event.status, event.last_status_code), ("Retrying", 500))
		self.assertFalse(self.shipping(note).ec_tracking_number)
		self.make_due()
		self.drain()
		[event] = self.events_of(note)
		self.assertEqual(event.status, "Delivered", event.last_error)
		self.assertEqual(len(self.carrier.shipments), 1)
		self.assertEqual(self.carrier.bought, 1)
		self.assertTrue(self.shipping(note).ec_tracking_number)

	def test_a_lost_answer_after_the_carrier_created_and_bought_still_leaves_one_shipment(self):
		self.carrier.lose_answer("buy", delay=3)  # bought, but the answer comes after our 2 s timeout
		note = self.submit_note()
		self.drain()
		[event] = self.events_of(note)
		self.assertEqual(event.status, "Retrying")
		self.assertIn("timeout", event.last_error)
		self.assertEqual(self.carrier.bought, 1)
		self.make_due()
		self.drain()
		[event] = self.events_of(note)
		self.assertEqual(event.status, "Delivered", event.last_error)
		[shipment] = self.carrier.shipments.values()
		self.assertEqual(self.carrier.bought, 1)
		self.assertEqual(self.shipping(note).ec_tracking_number, shipment["tracking_code"])

	def test_a_422_is_dead_with_the_carriers_message_and_retry_from_desk_ships_it_once(self):
		self.carrier.fail(
			"create",
			422,
			{"error": {"code": "ADDRESS.VERIFY.FAILURE", "message": "Address not found", "errors": []}},
		)
		note = self.submit_note()
		self.drain()
		[event] = self.events_of(note)
		self.assertEqual((event.status, event.last_status_code), ("Dead", 422))
		self.assertIn("ADDRESS.VERIFY.FAILURE: Address not found", event.last_error)
		self.assertFalse(self.carrier.shipments)
		# the person fixed it at the carrier, then pressed Retry on the event
		self.assertEqual(events.retry_events([event.name])["retried"], [event.name])
		self.drain()
		[event] = self.events_of(note)
		self.assertEqual(event.status, "Delivered", event.last_error)
		self.assertEqual(len(self.carrier.shipments), 1)

	def test_a_wrong_api_key_is_dead_and_retry_after_fixing_the_connector_ships(self):
		frappe.db.set_value("Connector", self.connector.name, "username", "EZTK_wrong")
		note = self.submit_note()
		self.drain()
		[event] = self.events_of(note)
		self.assertEqual((event.status, event.last_status_code), ("Dead", 401))
		self.assertIn("APIKEY.REQUIRED", event.last_error)
		connector = frappe.get_doc("Connector", self.connector.name)
		connector.username = API_KEY
		connector.save()
		events.retry_events([event.name])
		self.drain()
		[event] = self.events_of(note)
		self.assertEqual(event.status, "Delivered", event.last_error)

	def test_an_item_without_a_weight_is_dead_before_the_carrier_is_called(self):
		weightless = make_item()
		note = self.submit_note([(weightless.name, 1)])
		self.drain()
		[event] = self.events_of(note)
		self.assertEqual(event.status, "Dead")
		self.assertIn(f"item {weightless.name} has no weight", event.last_error)
		self.assertEqual(self.carrier.requests, [])

	def test_an_address_without_a_zip_is_dead_and_replay_after_fixing_it_ships_once(self):
		frappe.db.set_value("Address", self.ship_to, "pincode", "")
		note = self.submit_note()
		self.drain()
		[dead] = self.events_of(note)
		self.assertEqual(dead.status, "Dead")
		self.assertIn("to_address (the customer's shipping address) has no zip", dead.last_error)
		self.assertEqual(self.carrier.requests, [])
		frappe.db.set_value("Address", self.ship_to, "pincode", "38103")
		events.replay_events([dead.name])  # renders the note again, as it is now
		self.drain()
		self.assertEqual([e.status for e in self.events_of(note)], ["Dead", "Delivered"])
		[shipment] = self.carrier.shipments.values()
		self.assertEqual(shipment["to_address"]["zip"], "38103")
		self.assertTrue(self.shipping(note).ec_tracking_number)

	def test_a_sales_return_ships_nothing(self):
		from erpnext.stock.doctype.delivery_note.delivery_note import make_sales_return

		note, _ = self.shipped_note()
		returned = make_sales_return(note.name)
		returned.insert()
		returned.submit()
		frappe.db.commit()
		self.assertEqual(self.events_of(returned), [])
		self.drain()
		self.assertEqual(len(self.carrier.shipments), 1)

	def test_guided_setup_makes_the_rules_and_says_what_is_left(self):
		rules = frappe.get_all(
			"Sync Rule",
			{"connector": self.connector.name},
			["reference_doctype", "direction", "event_on_submit", "target_path"],
		)
		self.assertIn(
			{
				"reference_doctype": "Delivery Note",
				"direction": "Push",
				"event_on_submit": 1,
				"target_path": "/v2/shipments",
			},
			rules,
		)
		self.assertIn(
			"Shipment Tracking Event", [r.reference_doctype for r in rules if r.direction == "Inbound"]
		)
		self.assertEqual(
			frappe.db.get_value("Connector", self.connector.name, "receive_scheme"), "EasyPost HMAC"
		)
		self.assertIn("Weight Per Unit", self.setup_result["next_steps"])
		self.assertIn("Shipment Tracker", self.setup_result["next_steps"])

	def test_end_to_end_on_rq_workers_submit_ships_and_a_webhook_delivers_it(self):
		note = self.submit_note()  # the commit wakes the connector's drain: a job on the queue
		start_worker(burst=True).wait(timeout=120)
		stored = self.shipping(note)
		self.assertTrue(stored.ec_tracking_number, self.events_of(note))
		self.assertEqual(len(self.carrier.shipments), 1)
		answer = self.receive(
			self.carrier.tracker_event(stored.ec_tracking_number, "delivered", "2026-12-02T11:05:00Z")
		)
		self.assertEqual(answer.json()["message"]["status"], "received", answer.text)
		start_worker(burst=True).wait(timeout=120)  # the web server queued its processing
		frappe.db.commit()
		[request] = frappe.get_all("Inbound Request", {"connector": self.connector.name}, ["status", "error"])
		self.assertEqual(request.status, "Processed", request.error)
		self.assertEqual(self.shipping(note).ec_shipping_status, "Delivered")
		owner = frappe.db.get_value("Shipment Tracking Event", {"delivery_note": note.name}, "owner")
		self.assertEqual(owner, CARRIER_USER)  # written as the connector's API user

	# -- tracking webhooks ------------------------------------------------------------------------------
	def test_tracking_webhooks_move_the_status_in_order_with_a_history(self):
		note, code = self.shipped_note()
		steps = [
			("pre_transit", "2026-12-01T08:00:00Z", "Label created"),
			("in_transit", "2026-12-01T12:00:00Z", "Departed facility"),
			("out_for_delivery", "2026-12-02T07:30:00Z", "Out for delivery"),
			("delivered", "2026-12-02T11:05:00Z", "Delivered, front door"),
		]
		for status, at, message in steps:
			answer = self.receive(self.carrier.tracker_event(code, status, at, message))
			self.assertEqual(answer.status_code, 200, answer.text)
			self.assertEqual(answer.json()["message"]["status"], "received")
			requests_ = self.process_received()
			self.assertEqual({r.status for r in requests_}, {"Processed"}, [r.error for r in requests_])
			self.assertEqual(self.shipping(note).ec_shipping_status, easypost.STATUSES[status])
		stored = self.shipping(note)
		# the carrier's UTC time, in the site's time zone
		expected = convert_utc_to_system_timezone(get_datetime("2026-12-02 11:05:00")).replace(tzinfo=None)
		self.assertEqual(stored.ec_shipping_status_at, expected)
		history = self.history(note)
		self.assertEqual(
			[(h.status, h.message) for h in history],
			[
				("Pre-Transit", "Label created"),
				("In Transit", "Departed facility"),
				("Out for Delivery", "Out for delivery"),
				("Delivered", "Delivered, front door"),
			],
		)
		self.assertEqual(history[0].location, "Memphis, TN, US")
		self.assertEqual((history[0].carrier, history[0].carrier_detail), ("USPS", "pre_transit_detail"))

	def test_a_late_old_webhook_never_moves_the_status_backwards_and_duplicates_count_once(self):
		note, code = self.shipped_note()
		delivered = self.carrier.tracker_event(code, "delivered", "2026-12-02T11:05:00Z")
		in_transit = self.carrier.tracker_event(code, "in_transit", "2026-12-01T12:00:00Z")
		self.receive(delivered)
		self.receive(in_transit)  # older, arrives later
		self.process_received()
		self.assertEqual(self.shipping(note).ec_shipping_status, "Delivered")
		self.assertEqual([h.status for h in self.history(note)], ["In Transit", "Delivered"])
		# the same event again: refused as a duplicate delivery
		self.assertEqual(self.receive(delivered).json()["message"]["status"], "duplicate")
		# the same event id sent once more with other bytes: the event's id is the delivery id
		again = json.loads(json.dumps(delivered))
		again["previous_attributes"] = {"status": "out_for_delivery"}
		self.assertEqual(self.receive(again).json()["message"]["status"], "duplicate")
		requests_ = self.process_received()
		self.assertEqual([r.status for r in requests_], ["Processed"] * 2, [r.error for r in requests_])
		self.assertEqual(
			sorted(
				frappe.get_all("Inbound Request", {"connector": self.connector.name}, pluck="delivery_id")
			),
			sorted([delivered["id"], in_transit["id"]]),
		)
		self.assertEqual([h.status for h in self.history(note)], ["In Transit", "Delivered"])
		self.assertEqual(self.shipping(note).ec_shipping_status, "Delivered")

	def test_a_wrong_signature_is_refused_with_401_and_changes_nothing(self):
		note, code = self.shipped_note()
		event = self.carrier.tracker_event(code, "delivered", "2026-12-02T11:05:00Z")
		body = json.dumps(event).encode()
		cases = {
			"wrong secret": signing.easypost_signature("another secret", body),
			"signed over another body": signing.easypost_signature(RECEIVE_SECRET, body + b" "),
			"without its prefix": signing.easypost_signature(RECEIVE_SECRET, body).split("=", 1)[1],
			"not a signature": "x",
		}
		for label, signature in cases.items():
			with self.subTest(label):
				answer = self.receive(event, signature=signature)
				self.assertEqual(answer.status_code, 401, answer.text)
		frappe.db.commit()
		self.assertFalse(frappe.db.exists("Inbound Request", {"connector": self.connector.name}))
		self.assertFalse(self.history(note))
		self.assertFalse(self.shipping(note).ec_shipping_status)

	def test_a_failed_delivery_notifies_the_notes_owner_once(self):
		note, code = self.shipped_note()
		self.receive(self.carrier.tracker_event(code, "in_transit", "2026-12-01T12:00:00Z"))
		failure = self.carrier.tracker_event(
			code, "failure", "2026-12-02T09:00:00Z", "Recipient not available"
		)
		self.receive(failure)
		self.process_received()
		self.assertEqual(self.shipping(note).ec_shipping_status, "Failed")
		notes = frappe.get_all(
			"Notification Log",
			{"document_type": "Delivery Note", "document_name": note.name},
			["for_user", "subject", "email_content"],
		)
		self.assertEqual([n.for_user for n in notes], [note.owner])
		self.assertIn("Failed", notes[0].subject)
		self.assertIn("Recipient not available", notes[0].email_content)
		# the same failure once more (another event id, same time): still one notification
		self.receive(
			self.carrier.tracker_event(code, "failure", "2026-12-02T09:00:00Z", "Recipient not available")
		)
		self.process_received()
		self.assertEqual(
			frappe.db.count(
				"Notification Log", {"document_type": "Delivery Note", "document_name": note.name}
			),
			1,
		)

	def test_a_webhook_before_the_tracking_number_is_known_fails_visibly_and_process_again_applies_it(self):
		note = self.submit_note()  # not drained yet: no tracking number on the note
		event = self.carrier.tracker_event("9400UNKNOWN", "in_transit", "2026-12-01T12:00:00Z")
		self.receive(event)
		[request] = self.process_received()
		self.assertEqual(request.status, "Failed")
		self.assertIn("No submitted Delivery Note has the tracking number 9400UNKNOWN", request.error)
		# the note ships, and its number is the one the webhook carried: Process Again applies it
		self.drain()
		frappe.db.set_value("Delivery Note", note.name, "ec_tracking_number", "9400UNKNOWN")
		frappe.db.commit()
		frappe.get_doc("Inbound Request", request.name).retry()
		frappe.db.commit()
		self.assertEqual(frappe.db.get_value("Inbound Request", request.name, "status"), "Processed")
		self.assertEqual(self.shipping(note).ec_shipping_status, "In Transit")


class TestWriteBack(PushTestCase):
	"""The general mechanism the carrier uses: a push whose answer is written back onto its document
	(SendResult.write_back -> services/push/write_back.py), for any kind and doctype."""

	def setUp(self):
		super().setUp()
		self.customer_rule()

	def sent_customer(self):
		customer = make_customer()
		frappe.db.commit()
		[event] = self.events_of(customer)
		return customer, event

	def answer(self, event_names, values):
		return SendResult(
			event_names, Verdict(Outcome.DELIVERED, "HTTP 200"), 200, '{"order": 77}', write_back=values
		)

	def test_the_answer_is_written_onto_the_document_without_a_new_event_or_version(self):
		customer, event = self.sent_customer()
		modified = frappe.db.get_value("Customer", customer.name, "modified")
		values = {"customer_details": "webshop order 77", "no_such_field": 1}
		with patch.object(
			WebhookTransport,
			"send",
			lambda transport, route, evs: [self.answer([e.name for e in evs], values)],
		):
			self.drain()
		[event] = self.events_of(customer)
		self.assertEqual(event.status, "Delivered")
		self.assertEqual(event.last_response, '{"order": 77}')
		self.assertIn("has no field no_such_field", event.last_error)
		self.assertEqual(
			frappe.db.get_value("Customer", customer.name, "customer_details"), "webshop order 77"
		)
		self.assertEqual(frappe.db.get_value("Customer", customer.name, "modified"), modified)  # no save
		self.assertEqual(len(self.events_of(customer)), 1)  # and so no doc_events, nothing sent back

	def test_an_answer_for_events_no_longer_ours_writes_nothing(self):
		customer, event = self.sent_customer()
		frappe.db.set_value("Sync Event", event.name, {"status": "Sending", "claim_token": "theirs"})
		drainer = delivery.Drainer(self.connector.name)
		drainer.record("ours", [self.answer([event.name], {"customer_details": "stale"})])
		self.assertFalse(frappe.db.get_value("Customer", customer.name, "customer_details"))
		self.assertEqual(frappe.db.get_value("Sync Event", event.name, "status"), "Sending")
		drainer.record("theirs", [self.answer([event.name], {"customer_details": "fresh"})])
		self.assertEqual(frappe.db.get_value("Customer", customer.name, "customer_details"), "fresh")
		self.assertEqual(frappe.db.get_value("Sync Event", event.name, "status"), "Delivered")
