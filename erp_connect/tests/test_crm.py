"""A HubSpot-style CRM, end to end in the real site through the "CRM (HubSpot)" Guided Setup preset:
the fake HubSpot (testing/hubspot.py, a real HTTP server) signs its webhooks as HubSpot does and
posts them to the site's own web server; the site reads the objects back from it, writes them
through the upsert path, pulls its paginated lists, and pushes Customers, Contacts and
Opportunities to its REST API through the outbox and the drain."""

from urllib.parse import quote

import frappe
from frappe.utils import add_to_date, get_datetime, now_datetime

from erp_connect.install import CONNECT_API_USER
from erp_connect.services.ops.setup import apply_preset
from erp_connect.services.pull import runs
from erp_connect.services.push import delivery, events
from erp_connect.testing.base import (
	TEST_PREFIX,
	ConnectTestCase,
	make_api_user,
	make_customer,
	make_item,
	site_http,
	start_worker,
)
from erp_connect.testing.cleanup import delete_test_data
from erp_connect.testing.hubspot import FakeHubSpot, error_body
from erp_connect.testing.inbound import process_received

TOKEN = "pat-na1-site-test"
SECRET = "hubspot-app-client-secret-7f3e"
CRM_USER = "ec-crm@example.com"


class TestCrm(ConnectTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		cls.hub = FakeHubSpot(token=TOKEN).start()
		cls.addClassCleanup(cls.hub.stop)
		make_api_user(CRM_USER, [CONNECT_API_USER, "Sales User"])

	def setUp(self):
		super().setUp()
		self.addCleanup(delete_test_data)
		self.hub.reset()
		self.connector = self.make_connector(
			connector_type="HubSpot",
			base_url=self.hub.url,
			auth_type="Bearer Token",
			bearer_token=TOKEN,
			timeout_seconds=5,
		)
		self.setup_result = apply_preset(self.connector.name, "CRM (HubSpot)")
		self.item = make_item()
		connector = frappe.get_doc("Connector", self.connector.name)
		connector.update(
			{
				"api_user": CRM_USER,
				"receive_doctype": "Contact",
				"receive_secret": SECRET,
				"deal_item": self.item.name,
			}
		)
		connector.save()
		frappe.cache.delete_value(delivery._backoff_key(self.connector.name))
		frappe.db.commit()

	# -- helpers ------------------------------------------------------------------------------------
	def receive(self, events_: list[dict], secret: str = SECRET, **options):
		"""POST a webhook to the site's own web server as HubSpot does, signed over the URL it
		calls (the site's public URL: here its host name)."""
		url, session = site_http()
		target = f"/api/method/erp_connect.api.v1.receive?connector={quote(self.connector.name)}"
		host = session.headers["Host"]
		return self.hub.send_webhook(
			url + target,
			events_,
			secret,
			signed_url=f"http://{host}{target}",
			headers={"Host": host},
			**options,
		)

	def process_received(self) -> list:
		return process_received(self.connector.name)

	def events_of(self, doctype: str, name: str) -> list:
		frappe.db.commit()
		return frappe.get_all(
			"Sync Event",
			{"reference_doctype": doctype, "reference_name": name, "connector": self.connector.name},
			["*"],
			order_by="seq asc",
		)

	def link_of(self, doctype: str, external_id: str) -> str | None:
		return frappe.db.get_value(
			"Sync Link",
			{"connector": self.connector.name, "reference_doctype": doctype, "external_id": external_id},
			"reference_name",
		)

	def external_id_of(self, doctype: str, name: str) -> str | None:
		return frappe.db.get_value(
			"Sync Link",
			{"connector": self.connector.name, "reference_doctype": doctype, "reference_name": name},
			"external_id",
		)

	def pull_rule(self, doctype: str) -> str:
		return frappe.db.get_value(
			"Pull Rule", {"connector": self.connector.name, "reference_doctype": doctype}
		)

	def acme_in_hubspot(self) -> tuple[str, str]:
		"""A company and a contact of it made in HubSpot: (company id, contact id)."""
		company = self.hub.add("companies", {"name": TEST_PREFIX + "Acme", "domain": "acme.example"})
		contact = self.hub.add(
			"contacts",
			{"firstname": TEST_PREFIX + "Ann", "lastname": "Lee", "email": "ann.lee@acme.example"},
			companies=[company],
		)
		return company, contact

	def synced_contact(self) -> tuple[str, str, str]:
		"""Acme's contact brought in by a webhook: (company id, contact id, Contact name)."""
		company, contact = self.acme_in_hubspot()
		self.receive([self.hub.event("contact.creation", contact)])
		[request] = self.process_received()
		self.assertEqual(request.status, "Processed", request.error)
		return company, contact, self.link_of("Contact", contact)

	# -- Guided Setup ----------------------------------------------------------------------------------
	def test_guided_setup_makes_the_rules_and_says_what_is_left(self):
		connector = frappe.get_doc("Connector", self.connector.name)
		self.assertEqual(
			(connector.receive_scheme, connector.won_deals_become), ("HubSpot v3", "Sales Order")
		)
		pulls = frappe.get_all(
			"Pull Rule",
			{"connector": self.connector.name},
			["reference_doctype", "list_path", "pagination_style"],
		)
		self.assertEqual(
			{(p.reference_doctype, p.list_path, p.pagination_style) for p in pulls},
			{
				("Customer", "/crm/v3/objects/companies", "Cursor Token"),
				("Contact", "/crm/v3/objects/contacts", "Cursor Token"),
				("Opportunity", "/crm/v3/objects/deals", "Cursor Token"),
			},
		)
		pushes = frappe.get_all(
			"Sync Rule",
			{"connector": self.connector.name, "direction": "Push"},
			["reference_doctype", "target_path"],
		)
		self.assertEqual(len(pushes), 3)
		allowed = {r.reference_doctype for r in connector.allowed_doctypes}
		self.assertEqual(allowed, {"Customer", "Contact", "Opportunity", "Sales Order"})
		self.assertIn("private app", self.setup_result["next_steps"])
		self.assertIn("erp_connect.api.v1.receive?connector=", self.setup_result["next_steps"])
		self.assertEqual(connector.transport().ping().status, 200)  # Test Connection with the token

	# -- webhooks in -----------------------------------------------------------------------------------
	def test_a_webhook_brings_a_contact_in_linked_to_its_companys_customer(self):
		company, contact = self.acme_in_hubspot()
		answer = self.receive([self.hub.event("contact.creation", contact)])
		self.assertEqual(answer.status_code, 200, answer.text)
		self.assertEqual(answer.json()["message"]["status"], "received")
		[request] = self.process_received()
		self.assertEqual(request.status, "Processed", request.error)
		customer = self.link_of("Customer", company)  # the new company was read and written first
		self.assertEqual(customer, frappe.db.get_value("Customer", {"customer_name": TEST_PREFIX + "Acme"}))
		name = self.link_of("Contact", contact)
		doc = frappe.get_doc("Contact", name)
		self.assertEqual(
			(doc.first_name, doc.last_name, doc.email_id),
			(TEST_PREFIX + "Ann", "Lee", "ann.lee@acme.example"),
		)
		self.assertEqual(
			[(link.link_doctype, link.link_name) for link in doc.links], [("Customer", customer)]
		)
		self.assertEqual(doc.owner, CRM_USER)  # written as the connector's API user
		self.assertEqual(frappe.db.get_value("Customer", customer, "website"), "acme.example")
		# nothing that came from HubSpot goes back to it
		self.assertEqual(self.events_of("Contact", name) + self.events_of("Customer", customer), [])

	def test_a_wrong_signature_is_refused_with_401_and_nothing_is_written(self):
		_company, contact = self.acme_in_hubspot()
		event = self.hub.event("contact.creation", contact)
		stale = int((now_datetime().timestamp() - 400) * 1000)
		for answer in (
			self.receive([event], secret="not-the-app-secret"),
			self.receive([event], timestamp_ms=stale),
		):
			self.assertEqual(answer.status_code, 401, answer.text)
		# a body other than the one signed, and a URL other than the one called
		url, session = site_http()
		target = f"/api/method/erp_connect.api.v1.receive?connector={quote(self.connector.name)}"
		host = session.headers["Host"]
		signed = FakeHubSpot.signed_headers(SECRET, f"http://{host}{target}", b'[{"eventId":1,"objectId":1}]')
		tampered = frappe.as_json([event]).encode()
		for headers, body in (
			(signed, tampered),
			(FakeHubSpot.signed_headers(SECRET, f"http://{host}{target}&x=1", tampered), tampered),
		):
			answer = session.post(url + target, data=body, headers={**headers, "Host": host})
			self.assertEqual(answer.status_code, 401, answer.text)
		self.assertEqual(self.process_received(), [])
		self.assertIsNone(self.link_of("Contact", contact))
		self.assertFalse(frappe.db.exists("Customer", {"customer_name": TEST_PREFIX + "Acme"}))

	def test_a_replayed_webhook_is_applied_once(self):
		_company, contact = self.acme_in_hubspot()
		event = self.hub.event("contact.creation", contact)
		first = self.receive([event])
		again = self.receive([event])
		self.assertEqual(first.json()["message"]["status"], "received")
		self.assertEqual(again.json()["message"]["status"], "duplicate")
		[request] = self.process_received()
		self.assertEqual(request.status, "Processed", request.error)
		# the same event again inside a new batch: the object is read again and found unchanged
		self.receive([event, self.hub.event("contact.propertyChange", contact, propertyName="lastname")])
		requests = self.process_received()
		self.assertEqual([r.status for r in requests], ["Processed", "Processed"], requests)
		self.assertIn('"status": "unchanged"', requests[1].result)
		self.assertEqual(frappe.db.count("Contact", {"first_name": TEST_PREFIX + "Ann"}), 1)
		self.assertEqual(frappe.db.count("Customer", {"customer_name": TEST_PREFIX + "Acme"}), 1)

	def test_a_webhook_hubspot_cannot_answer_for_fails_visibly_and_process_again_applies_it(self):
		_company, contact = self.acme_in_hubspot()
		self.hub.fail("read", 500)  # HubSpot is down when the site reads the contact
		self.receive([self.hub.event("contact.creation", contact)])
		[request] = self.process_received()
		self.assertEqual(request.status, "Failed")
		self.assertIn("HubSpot answered HTTP 500", request.error)
		self.assertIsNone(self.link_of("Contact", contact))
		self.assertTrue(
			frappe.db.get_value("Inbound Request", request.name, "next_attempt_at")
		)  # retried later
		frappe.get_doc("Inbound Request", request.name).retry()  # Process Again in Desk
		frappe.db.commit()
		self.assertEqual(frappe.db.get_value("Inbound Request", request.name, "status"), "Processed")
		self.assertTrue(self.link_of("Contact", contact))

	def test_a_change_from_hubspot_is_applied_and_not_pushed_back(self):
		company, contact, name = self.synced_contact()
		customer = self.link_of("Customer", company)
		self.hub.change("companies", company, domain="acme-group.example")
		self.hub.change("contacts", contact, lastname="Lee-Smith")
		self.receive(
			[
				self.hub.event("company.propertyChange", company, propertyName="domain"),
				self.hub.event("contact.propertyChange", contact, propertyName="lastname"),
			]
		)
		requests = self.process_received()
		self.assertEqual(requests[-1].status, "Processed", requests[-1].error)
		self.assertEqual(frappe.db.get_value("Customer", customer, "website"), "acme-group.example")
		self.assertEqual(frappe.db.get_value("Contact", name, "last_name"), "Lee-Smith", requests[-1].result)
		self.assertEqual(self.events_of("Customer", customer) + self.events_of("Contact", name), [])
		self.drain()
		self.assertEqual(self.hub.count("PATCH") + self.hub.count("POST"), 0)

	def test_conflicts_follow_the_rules_policy(self):
		_company, contact, name = self.synced_contact()
		frappe.db.set_value("Connector", self.connector.name, "paused", 1)  # ERPNext's edit waits unsent
		doc = frappe.get_doc("Contact", name)
		doc.first_name = TEST_PREFIX + "Annie"
		doc.save()
		self.hub.change("contacts", contact, firstname=TEST_PREFIX + "Anne")
		self.receive([self.hub.event("contact.propertyChange", contact, propertyName="firstname")])
		self.process_received()
		# Park for Review (the preset's default): ERPNext's version stays, the remote one waits
		self.assertEqual(frappe.db.get_value("Contact", name, "first_name"), TEST_PREFIX + "Annie")
		conflict = frappe.get_all(
			"Sync Conflict",
			{"connector": self.connector.name, "external_id": contact},
			["status", "remote_data"],
		)
		self.assertEqual(len(conflict), 1)
		self.assertEqual(conflict[0].status, "Open")
		self.assertIn(TEST_PREFIX + "Anne", conflict[0].remote_data)
		# Remote Wins: the next HubSpot change is written over ERPNext's
		frappe.db.set_value("Pull Rule", self.pull_rule("Contact"), "conflict_policy", "Remote Wins")
		self.hub.change("contacts", contact, firstname=TEST_PREFIX + "Anna")
		self.receive([self.hub.event("contact.propertyChange", contact, propertyName="firstname")])
		requests = self.process_received()
		self.assertEqual(requests[-1].status, "Processed", requests[-1].error)
		self.assertEqual(frappe.db.get_value("Contact", name, "first_name"), TEST_PREFIX + "Anna")

	def test_a_won_deal_becomes_one_draft_sales_order(self):
		company = self.hub.add("companies", {"name": TEST_PREFIX + "Globex"})
		deal = self.hub.add(
			"deals",
			{
				"dealname": TEST_PREFIX + "Big deal",
				"amount": "1200",
				"dealstage": "contractsent",
				"closedate": "2026-12-20T00:00:00Z",
			},
			companies=[company],
		)
		self.receive([self.hub.event("deal.creation", deal)])
		self.process_received()
		opportunity = self.link_of("Opportunity", deal)
		customer = self.link_of("Customer", company)
		self.assertEqual(
			frappe.db.get_value(
				"Opportunity", opportunity, ["party_name", "opportunity_amount", "expected_closing"]
			),
			(customer, 1200, get_datetime("2026-12-20").date()),
		)
		self.assertFalse(frappe.db.exists("Sales Order", {"customer": customer}))
		self.hub.change("deals", deal, dealstage="closedwon")
		for _ in range(2):  # won, and its webhook sent again with a new event id
			self.receive([self.hub.event("deal.propertyChange", deal, propertyName="dealstage")])
			requests = self.process_received()
			self.assertEqual(requests[-1].status, "Processed", requests[-1].error)
		orders = frappe.get_all("Sales Order", {"customer": customer}, ["name", "docstatus", "grand_total"])
		self.assertEqual(len(orders), 1, orders)
		self.assertEqual((orders[0].docstatus, orders[0].grand_total), (0, 1200))
		self.assertEqual(
			frappe.get_all("Sales Order Item", {"parent": orders[0].name}, pluck="item_code"),
			[self.item.name],
		)
		self.assertEqual(self.link_of("Sales Order", deal), orders[0].name)

	def test_won_deals_can_become_quotations_instead(self):
		connector = frappe.get_doc("Connector", self.connector.name)
		connector.won_deals_become = "Quotation"
		connector.append(
			"allowed_doctypes", {"reference_doctype": "Quotation", "can_create": 1, "can_update": 1}
		)
		connector.save()
		frappe.db.commit()
		company = self.hub.add("companies", {"name": TEST_PREFIX + "Umbrella"})
		deal = self.hub.add(
			"deals",
			{"dealname": TEST_PREFIX + "Won", "amount": "80", "dealstage": "closedwon"},
			companies=[company],
		)
		for _ in range(2):
			self.receive([self.hub.event("deal.creation", deal)])
			requests = self.process_received()
			self.assertEqual(requests[-1].status, "Processed", requests[-1].error)
		customer = self.link_of("Customer", company)
		quotations = frappe.get_all(
			"Quotation", {"party_name": customer}, ["quotation_to", "grand_total", "docstatus"]
		)
		self.assertEqual(
			[(q.quotation_to, q.grand_total, q.docstatus) for q in quotations], [("Customer", 80, 0)]
		)
		self.assertFalse(frappe.db.exists("Sales Order", {"customer": customer}))

	def test_end_to_end_on_rq_workers_a_webhook_in_and_a_customer_out(self):
		_company, contact = self.acme_in_hubspot()
		answer = self.receive([self.hub.event("contact.creation", contact)])
		self.assertEqual(answer.json()["message"]["status"], "received", answer.text)
		start_worker(burst=True).wait(timeout=120)  # the web server queued its processing
		frappe.db.commit()
		[request] = frappe.get_all("Inbound Request", {"connector": self.connector.name}, ["status", "error"])
		self.assertEqual(request.status, "Processed", request.error)
		name = self.link_of("Contact", contact)
		self.assertEqual(frappe.db.get_value("Contact", name, "owner"), CRM_USER)
		customer = make_customer()
		frappe.db.commit()  # wakes the connector's drain: a job on the queue
		start_worker(burst=True).wait(timeout=120)
		[event] = self.events_of("Customer", customer.name)
		self.assertEqual(event.status, "Delivered", event.last_error)
		self.assertEqual(len(self.hub.find("companies", name=customer.customer_name)), 1)

	# -- pulls -----------------------------------------------------------------------------------------
	def test_a_scheduled_pull_reads_250_contacts_across_pages(self):
		company = self.hub.add("companies", {"name": TEST_PREFIX + "Initech"})
		runs.run(self.pull_rule("Customer"))
		for i in range(250):
			self.hub.add(
				"contacts",
				{
					"firstname": f"{TEST_PREFIX}P{i:03}",
					"lastname": "Pulled",
					"email": f"p{i}@initech.example",
				},
				companies=[company] if i % 50 == 0 else [],
			)
		frappe.db.set_value(
			"Pull Rule", self.pull_rule("Contact"), "next_run_at", add_to_date(now_datetime(), seconds=-1)
		)
		frappe.db.commit()
		runs.run(self.pull_rule("Contact"), manual=False)  # as the scheduler's job runs it
		frappe.db.commit()
		run = frappe.get_last_doc("Sync Run", {"pull_rule": self.pull_rule("Contact")})
		self.assertEqual(
			(run.status, run.pages, run.created, run.failed), ("Succeeded", 3, 250, 0), run.errors
		)
		self.assertEqual(self.hub.count("GET", "/crm/v3/objects/contacts"), 3)
		self.assertEqual(frappe.db.count("Contact", {"first_name": ("like", TEST_PREFIX + "P%")}), 250)
		customer = self.link_of("Customer", company)
		self.assertEqual(frappe.db.count("Dynamic Link", {"parenttype": "Contact", "link_name": customer}), 5)
		# read again: nothing changes
		runs.run(self.pull_rule("Contact"))
		frappe.db.commit()
		run = frappe.get_last_doc("Sync Run", {"pull_rule": self.pull_rule("Contact")})
		self.assertEqual((run.created, run.updated, run.unchanged), (0, 0, 250))

	# -- pushes out ------------------------------------------------------------------------------------
	def test_a_customer_saved_in_erpnext_becomes_one_company_and_its_next_save_patches_it(self):
		customer = make_customer(website="hooli.example")
		frappe.db.commit()
		self.drain()
		[event] = self.events_of("Customer", customer.name)
		self.assertEqual(event.status, "Delivered", event.last_error)
		company = self.external_id_of("Customer", customer.name)
		self.assertEqual(self.hub.get("companies", company)["properties"]["name"], customer.customer_name)
		customer.reload()
		customer.website = "hooli.xyz"
		customer.save()
		frappe.db.commit()
		self.drain()
		self.assertEqual(
			[e.status for e in self.events_of("Customer", customer.name)], ["Delivered", "Delivered"]
		)
		self.assertEqual(self.hub.get("companies", company)["properties"]["domain"], "hooli.xyz")
		self.assertEqual((self.hub.count("POST"), self.hub.count("PATCH")), (1, 1))
		self.assertEqual(len(self.hub.find("companies")), 1)
		# HubSpot's webhook for the company we made finds our Customer: no second one, nothing sent back
		self.receive([self.hub.event("company.creation", company)])
		[request] = self.process_received()
		self.assertEqual(request.status, "Processed", request.error)
		self.assertEqual(frappe.db.count("Customer", {"customer_name": customer.customer_name}), 1)
		self.assertEqual(len(self.events_of("Customer", customer.name)), 2)

	def test_a_contact_saved_in_erpnext_is_associated_with_its_customers_company(self):
		customer = make_customer()
		contact = frappe.get_doc(
			{
				"doctype": "Contact",
				"first_name": TEST_PREFIX + "Bo",
				"last_name": "Ng",
				"email_ids": [{"email_id": "bo.ng@example.com", "is_primary": 1}],
				"links": [{"link_doctype": "Customer", "link_name": customer.name}],
			}
		).insert()
		frappe.db.commit()
		for _ in range(3):  # the contact waits while its company is not at HubSpot yet
			self.drain()
			self.make_due()
		[event] = self.events_of("Contact", contact.name)
		self.assertEqual(event.status, "Delivered", event.last_error)
		hub_contact = self.external_id_of("Contact", contact.name)
		company = self.external_id_of("Customer", customer.name)
		self.assertEqual(self.hub.associated("contacts", hub_contact, "companies"), [company])
		self.assertEqual(self.hub.get("contacts", hub_contact)["properties"]["email"], "bo.ng@example.com")
		self.assertEqual(len(self.hub.find("contacts")), 1)

	def test_a_hubspot_400_is_dead_in_desk_and_retry_after_fixing_delivers_once(self):
		problem = error_body("VALIDATION_ERROR", 'Property values were not valid: "name" is too long')
		self.hub.fail("create", 400, problem)
		customer = make_customer()
		frappe.db.commit()
		self.drain()
		[event] = self.events_of("Customer", customer.name)
		self.assertEqual((event.status, event.last_status_code), ("Dead", 400))
		self.assertIn("VALIDATION_ERROR: Property values were not valid", event.last_error)
		self.assertTrue(frappe.db.get_value("Connector", self.connector.name, "failing_since"))
		self.assertEqual(self.hub.find("companies"), [])
		self.assertEqual(events.retry_events([event.name])["retried"], [event.name])  # Retry in Desk
		self.drain()
		[event] = self.events_of("Customer", customer.name)
		self.assertEqual(event.status, "Delivered", event.last_error)
		self.assertEqual(len(self.hub.find("companies")), 1)

	def test_a_429_is_retried_after_its_retry_after(self):
		self.hub.fail("create", 429, retry_after=30)
		customer = make_customer()
		frappe.db.commit()
		started = now_datetime()
		self.drain()
		[event] = self.events_of("Customer", customer.name)
		self.assertEqual((event.status, event.last_status_code), ("Retrying", 429))
		self.assertGreaterEqual(get_datetime(event.next_attempt_at), add_to_date(started, seconds=29))
		self.make_due()
		self.drain()
		[event] = self.events_of("Customer", customer.name)
		self.assertEqual(event.status, "Delivered", event.last_error)
		self.assertEqual(len(self.hub.find("companies")), 1)

	def test_a_wrong_token_is_dead_and_the_connector_failing(self):
		connector = frappe.get_doc("Connector", self.connector.name)
		connector.bearer_token = "pat-wrong"
		connector.save()
		customer = make_customer()
		frappe.db.commit()
		self.drain()
		[event] = self.events_of("Customer", customer.name)
		self.assertEqual((event.status, event.last_status_code), ("Dead", 401))
		self.assertIn("INVALID_AUTHENTICATION", event.last_error)
		self.assertTrue(frappe.db.get_value("Connector", self.connector.name, "failing_since"))
