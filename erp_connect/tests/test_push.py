"""Real-time push, end to end in a real site: doc_events -> Sync Event -> drain -> a real HTTP receiver.

Delivery commits (it must: claims are visible to other workers), so these tests commit too and
clean up what they made.
"""

import json

import frappe
from frappe.utils import add_days, get_datetime, now_datetime

from erp_connect.engine import signing
from erp_connect.engine.retry import DEFAULT_SCHEDULE
from erp_connect.services.push import delivery, events, outbox
from erp_connect.testing.base import (
	TEST_PREFIX,
	make_customer,
	make_item,
	make_sales_invoice,
)
from erp_connect.testing.push import CUSTOMER_MAP, OURS, SECRET, PushTestCase
from erp_connect.testing.remote import Reply


class TestPushDelivery(PushTestCase):
	def test_submitted_sales_invoice_reaches_the_receiver_mapped_and_signed(self):
		self.make_rule(
			self.connector.name,
			"Sales Invoice",
			("on_submit",),
			[
				("name", "invoice.id"),
				("customer", "invoice.customer"),
				("grand_total", "invoice.total", "Round", "2"),
				("posting_date", "invoice.date", "Date Format", "%d.%m.%Y"),
				("items.item_code", "invoice.lines[].sku"),
				("items.qty", "invoice.lines[].qty"),
				("", "source", "Constant", "erpnext"),
			],
		)
		customer = make_customer()
		item = make_item()
		invoice = make_sales_invoice(customer.name, [(item.name, 2, 10.125), (item.name, 1, 5)])
		[event] = self.events_of(invoice)
		self.assertEqual((event.status, event.doc_event, event.seq), ("Pending", "on_submit", 1))

		self.drain()
		[request] = self.remote.received("/hooks")
		self.assertEqual(signing.verify(SECRET, request.headers, request.body), event.event_id)
		self.assertEqual(request.headers["idempotency-key"], event.event_id)
		body = request.json()
		self.assertEqual(
			(body["id"], body["type"], body["name"]),
			(event.event_id, "Sales Invoice.on_submit", invoice.name),
		)
		self.assertEqual(
			body["data"],
			{
				"invoice": {
					"id": invoice.name,
					"customer": customer.name,
					"total": round(invoice.grand_total, 2),
					"date": get_datetime(invoice.posting_date).strftime("%d.%m.%Y"),
					"lines": [{"sku": item.name, "qty": 2}, {"sku": item.name, "qty": 1}],
				},
				"source": "erpnext",
			},
		)
		[event] = self.events_of(invoice)
		self.assertEqual((event.status, event.attempts, event.last_status_code), ("Delivered", 1, 200))

	def test_a_child_table_can_be_sent_whole_or_field_by_field(self):
		self.make_rule(
			self.connector.name,
			"Sales Invoice",
			("on_submit",),
			[("items", "all_lines"), ("items.qty", "lines[].qty"), ("posting_date", "date")],
		)
		item = make_item()
		invoice = make_sales_invoice(make_customer().name, [(item.name, 3, 7)])
		data = json.loads(self.events_of(invoice)[0].payload)["data"]
		self.assertEqual(data["lines"], [{"qty": 3}])
		self.assertEqual(
			[(r["item_code"], r["qty"], r["doctype"]) for r in data["all_lines"]],
			[(item.name, 3, "Sales Invoice Item")],
		)
		self.assertEqual(data["date"], str(invoice.posting_date))

	def test_a_rolled_back_save_leaves_no_event_and_sends_nothing(self):
		self.customer_rule()
		frappe.db.commit()
		customer = make_customer()
		self.assertEqual(
			frappe.db.count("Sync Event", {"reference_name": customer.name, "connector": OURS}), 1
		)
		self.assertTrue(frappe.local.erp_connect_wakeups)
		frappe.db.rollback()
		self.assertFalse(frappe.db.exists("Customer", customer.name))
		self.assertEqual(
			frappe.db.count("Sync Event", {"reference_name": customer.name, "connector": OURS}), 0
		)
		self.assertFalse(getattr(frappe.local, "erp_connect_wakeups", set()))
		self.drain()
		self.assertEqual(self.remote.received(), [])

	def test_500_three_times_then_200_delivers_on_the_fourth_attempt_with_the_same_id(self):
		self.customer_rule()
		self.remote.script("/hooks", Reply(500), Reply(500), Reply(500))
		customer = make_customer()
		for attempt in (1, 2, 3):
			self.drain()
			[event] = self.events_of(customer)
			self.assertEqual(
				(event.status, event.attempts, event.last_status_code), ("Retrying", attempt, 500)
			)
			delay = (get_datetime(event.next_attempt_at) - get_datetime(event.modified)).total_seconds()
			scheduled = DEFAULT_SCHEDULE[attempt - 1]
			self.assertTrue(0.89 * scheduled <= delay <= 1.11 * scheduled, (attempt, delay))
			self.drain()  # not due yet: nothing is sent
			self.assertEqual(len(self.remote.received()), attempt)
			self.make_due(customer)
		self.drain()
		[event] = self.events_of(customer)
		self.assertEqual((event.status, event.attempts), ("Delivered", 4))
		requests = self.remote.received("/hooks")
		self.assertEqual([r.status for r in requests], [500, 500, 500, 200])
		self.assertEqual({r.headers["webhook-id"] for r in requests}, {event.event_id})
		self.assertEqual({r.body for r in requests}, {requests[0].body})
		for r in requests:
			signing.verify(SECRET, r.headers, r.body)

	def test_429_with_retry_after_waits_at_least_that_long(self):
		self.customer_rule()
		self.remote.script("/hooks", Reply(429, headers={"Retry-After": "120"}))
		first = make_customer()
		self.drain()
		[event] = self.events_of(first)
		self.assertEqual(event.status, "Retrying")
		waited = (get_datetime(event.next_attempt_at) - get_datetime(event.modified)).total_seconds()
		self.assertGreaterEqual(waited, 120)
		# the whole connector backs off: a new event is not sent either
		second = make_customer()
		self.drain()
		self.assertEqual(len(self.remote.received()), 1)
		self.assertEqual(self.events_of(second)[0].status, "Pending")
		self.make_due(first)
		self.drain()
		self.assertEqual(
			[e.status for e in self.events_of(first) + self.events_of(second)], ["Delivered"] * 2
		)

	def test_410_disables_the_rule_and_tells_the_managers(self):
		rule = self.customer_rule()
		self.remote.script("/hooks", Reply(410))
		customer = make_customer()
		self.drain()
		[event] = self.events_of(customer)
		self.assertEqual((event.status, event.last_status_code), ("Dead", 410))
		enabled, reason = frappe.db.get_value("Sync Rule", rule.name, ["enabled", "disabled_reason"])
		self.assertEqual(enabled, 0)
		self.assertIn("410", reason)
		self.assertTrue(
			frappe.db.exists("Notification Log", {"subject": f"Sync Rule {rule.name} was disabled"})
		)
		later = make_customer()
		self.assertEqual(self.events_of(later), [])

	def test_a_failing_connector_alerts_once_per_episode(self):
		self.customer_rule()
		subject = f"{self.connector.name} is failing: an event was dead-lettered"

		def alerts() -> int:
			return frappe.db.count("Notification Log", {"subject": subject, "for_user": "Administrator"})

		self.remote.set_default("/hooks", Reply(400))
		for _ in range(3):
			make_customer()
		self.drain()
		make_customer()
		self.drain()
		self.assertEqual(alerts(), 1, "four dead events, one alert")
		self.assertTrue(frappe.db.get_value("Connector", self.connector.name, "failing_since"))

		self.remote.set_default("/hooks", Reply(200))
		make_customer()
		self.drain()
		self.assertFalse(frappe.db.get_value("Connector", self.connector.name, "failing_since"))
		self.remote.set_default("/hooks", Reply(400))
		make_customer()
		self.drain()
		self.assertEqual(alerts(), 2, "a new episode alerts again")

	def test_400_dead_letters_at_once_and_keeps_the_response(self):
		self.customer_rule()
		self.remote.script("/hooks", Reply(400, {"error": "email is invalid"}))
		customer = make_customer()
		self.drain()
		self.drain()
		[event] = self.events_of(customer)
		self.assertEqual((event.status, event.attempts, event.last_status_code), ("Dead", 1, 400))
		self.assertIn("email is invalid", event.last_response)
		self.assertEqual(len(self.remote.received()), 1)

	def test_a_timeout_is_retried_with_the_same_id(self):
		frappe.db.set_value("Connector", self.connector.name, "timeout_seconds", 0.5)
		self.customer_rule()
		self.remote.script("/hooks", Reply(200, delay=1.5))
		customer = make_customer()
		self.drain()
		[event] = self.events_of(customer)
		self.assertEqual(event.status, "Retrying")
		self.assertIn("timeout", event.last_error.lower())
		self.make_due(customer)
		self.drain()
		self.assertEqual(self.events_of(customer)[0].status, "Delivered")
		self.assertEqual({r.headers["webhook-id"] for r in self.remote.received()}, {event.event_id})

	def test_batching_sends_several_events_per_request(self):
		self.customer_rule(batch_size=3)
		customers = [make_customer() for _ in range(7)]
		self.drain()
		requests = self.remote.received("/hooks")
		self.assertEqual(sorted(len(r.json()["events"]) for r in requests), [1, 3, 3])
		for r in requests:
			self.assertEqual(r.json()["type"], "batch")
			self.assertTrue(r.headers["webhook-id"].startswith("batch_"))
			signing.verify(SECRET, r.headers, r.body)
		sent_ids = {e["id"] for r in requests for e in r.json()["events"]}
		expected = {self.events_of(c)[0].event_id for c in customers}
		self.assertEqual(sent_ids, expected)
		self.assertEqual({self.events_of(c)[0].status for c in customers}, {"Delivered"})

	def test_dry_run_records_the_exact_payload_and_sends_nothing(self):
		frappe.db.set_value("Connector", self.connector.name, "dry_run", 1)
		self.customer_rule()
		customer = make_customer()
		[event] = self.events_of(customer)
		self.assertEqual(event.status, "Dry Run")
		self.assertEqual(json.loads(event.payload)["data"]["id"], customer.name)
		self.drain()
		self.assertEqual(self.remote.received(), [])
		self.assertNotIn(self.connector.name, delivery.connectors_with_due_events())


class TestOutboxRules(PushTestCase):
	def test_sequence_numbers_increase_per_document(self):
		self.make_rule(self.connector.name, "Customer", ("after_insert", "on_update"), CUSTOMER_MAP)
		customer = make_customer()
		customer.customer_name += " changed"
		customer.save()
		self.assertEqual(
			[(e.doc_event, e.seq) for e in self.events_of(customer)],
			[("after_insert", 1), ("on_update", 2), ("on_update", 3)],
		)

	def test_python_condition_and_json_filters_choose_the_documents(self):
		self.customer_rule(condition="doc.customer_type == 'Individual'")
		other = self.make_connector()
		self.make_rule(
			other.name,
			"Customer",
			("after_insert",),
			CUSTOMER_MAP,
			condition='[["customer_type", "=", "Company"]]',
		)
		person = make_customer(customer_type="Individual")
		company = make_customer(customer_type="Company")
		self.assertEqual([e.connector for e in self.events_of(person)], [self.connector.name])
		self.assertEqual([e.connector for e in self.events_of(company)], [other.name])

	def test_a_broken_condition_does_not_block_the_save_and_is_visible(self):
		self.customer_rule(condition="doc.no_such_field.upper() == 'X'")
		customer = make_customer()
		[event] = self.events_of(customer)
		self.assertEqual(event.status, "Dead")
		self.assertIn("Condition failed", event.last_error)

	def test_a_mapping_failure_is_dead_lettered_with_the_reason(self):
		self.make_rule(
			self.connector.name, "Customer", ("after_insert",), [("email_id", "email", "None", None, 1)]
		)
		customer = make_customer()
		[event] = self.events_of(customer)
		self.assertEqual(event.status, "Dead")
		self.assertIn("email: required", event.last_error)

	def test_a_change_that_came_from_the_connector_is_not_echoed_back(self):
		self.customer_rule()
		other = self.make_connector()
		self.make_rule(other.name, "Customer", ("after_insert",), CUSTOMER_MAP)
		doc = frappe.get_doc(
			{
				"doctype": "Customer",
				"customer_name": TEST_PREFIX + "echo",
				"customer_group": "All Customer Groups",
			}
		)
		doc.flags.erp_connect_origin = self.connector.name
		doc.insert()
		self.assertEqual([e.connector for e in self.events_of(doc)], [other.name])

	def test_a_deletion_is_recorded_with_the_document_as_it_was(self):
		self.make_rule(self.connector.name, "Customer", ("on_trash",), CUSTOMER_MAP)
		customer = make_customer()
		frappe.delete_doc("Customer", customer.name)
		[event] = self.events_of(customer)
		self.assertEqual((event.doc_event, event.status), ("on_trash", "Pending"))
		self.assertEqual(json.loads(event.payload)["data"]["name"], customer.customer_name)
		self.drain()
		self.assertEqual(self.remote.received()[0].json()["type"], "Customer.on_trash")

	def test_all_events_of_one_save_are_written_together_at_its_end(self):
		self.make_rule(self.connector.name, "Customer", ("after_insert", "on_update"), CUSTOMER_MAP)
		writes = []
		original = outbox.insert_rows
		outbox.insert_rows = lambda rows: (
			writes.append(sum(r["connector"] == self.connector.name for r in rows)) or original(rows)
		)
		try:
			customer = make_customer()
		finally:
			outbox.insert_rows = original
		self.assertEqual(writes, [2])  # after_insert + on_update, one INSERT
		self.assertEqual([e.doc_event for e in self.events_of(customer)], ["after_insert", "on_update"])

	def test_a_save_that_fails_after_its_events_writes_none(self):
		self.make_rule(self.connector.name, "Customer", ("after_insert", "on_update"), CUSTOMER_MAP)
		doc = frappe.get_doc(
			{
				"doctype": "Customer",
				"customer_name": TEST_PREFIX + "fails",
				"customer_group": "All Customer Groups",
			}
		)

		def fail(*args, **kwargs):
			raise frappe.ValidationError("a later on_update hook failed")

		doc.on_update = fail  # runs after after_insert, before on_change
		frappe.db.savepoint("before_failing_save")
		with self.assertRaises(frappe.ValidationError):
			doc.insert()
		frappe.db.rollback(save_point="before_failing_save")
		self.assertEqual(frappe.db.count("Sync Event", {"reference_name": doc.name, "connector": OURS}), 0)

	def test_disabled_connector_records_nothing(self):
		self.customer_rule()
		self.connector.reload()
		self.connector.enabled = 0
		self.connector.save()
		self.assertEqual(self.events_of(make_customer()), [])


class TestDeskActions(PushTestCase):
	def test_retry_resends_a_dead_event_with_its_own_id(self):
		self.customer_rule()
		self.remote.script("/hooks", Reply(400))
		customer = make_customer()
		self.drain()
		[dead] = self.events_of(customer)
		self.assertEqual(dead.status, "Dead")
		self.assertEqual(events.retry_events([dead.name]), {"retried": [dead.name], "skipped": []})
		[pending] = self.events_of(customer)
		self.assertEqual((pending.status, pending.attempts), ("Pending", 0))
		self.drain()
		[delivered] = self.events_of(customer)
		self.assertEqual(delivered.status, "Delivered")
		self.assertEqual([r.headers["webhook-id"] for r in self.remote.received()], [dead.event_id] * 2)
		# a delivered event is not retried
		self.assertEqual(events.retry_events([dead.name])["skipped"], [dead.name])

	def test_replay_sends_the_current_document_as_a_new_event(self):
		self.customer_rule()
		customer = make_customer()
		self.drain()
		[first] = self.events_of(customer)
		frappe.db.set_value("Customer", customer.name, "customer_name", "Renamed Ltd")
		created = events.replay_events([first.name])["created"]
		self.drain()
		ids = [r.json()["id"] for r in self.remote.received()]
		self.assertEqual(len(ids), 2)
		self.assertNotEqual(ids[0], ids[1])
		self.assertEqual(self.remote.received()[1].json()["data"]["name"], "Renamed Ltd")
		self.assertEqual(ids[1], created[0])
		self.assertEqual(frappe.db.get_value("Sync Event", created[0], "event_id"), created[0])
		self.assertEqual(frappe.db.get_value("Sync Event", {"event_id": created[0]}, "status"), "Delivered")

	def test_desk_api_needs_the_manager_role(self):
		from erp_connect.testing.base import make_api_user, site_http

		self.customer_rule()
		self.remote.script("/hooks", Reply(400))
		customer = make_customer()
		self.drain()
		[dead] = self.events_of(customer)
		url, anonymous = site_http()
		self.assertEqual(
			anonymous.post(
				f"{url}/api/method/erp_connect.api.events.retry", json={"names": [dead.name]}
			).status_code,
			403,
		)
		key, secret = make_api_user("ec-nobody@example.com", [])
		url, nobody = site_http(key, secret)
		self.assertEqual(
			nobody.post(
				f"{url}/api/method/erp_connect.api.events.retry", json={"names": [dead.name]}
			).status_code,
			403,
		)
		self.assertEqual(self.events_of(customer)[0].status, "Dead")
		key, secret = make_api_user("ec-manager@example.com", ["Connect Manager"])
		url, manager = site_http(key, secret)
		response = manager.post(f"{url}/api/method/erp_connect.api.events.retry", json={"names": [dead.name]})
		self.assertEqual(response.status_code, 200, response.text)
		self.assertEqual(response.json()["message"]["retried"], [dead.name])
		self.assertEqual(self.events_of(customer)[0].status, "Pending")

	def test_retention_deletes_old_deliveries_and_keeps_dead_events(self):
		self.customer_rule()
		docs = [make_customer() for _ in range(3)]
		old = add_days(now_datetime(), -30)
		rows = [self.events_of(d)[0].name for d in docs]
		frappe.db.set_value("Sync Event", rows[0], {"status": "Delivered", "delivered_at": old})
		frappe.db.set_value("Sync Event", rows[1], {"status": "Delivered", "delivered_at": now_datetime()})
		frappe.db.set_value("Sync Event", rows[2], {"status": "Dead", "delivered_at": old})
		frappe.db.set_single_value("ERP Connect Settings", "delivered_retention_days", 7)
		events.delete_old_deliveries()
		self.assertEqual([frappe.db.exists("Sync Event", r) is not None for r in rows], [False, True, True])

	def test_the_sweeper_finds_due_connectors_only(self):
		self.customer_rule()
		customer = make_customer()
		frappe.db.commit()
		self.assertIn(self.connector.name, delivery.connectors_with_due_events())
		frappe.db.set_value(
			"Sync Event", {"reference_name": customer.name}, "next_attempt_at", add_days(now_datetime(), 1)
		)
		self.assertNotIn(self.connector.name, delivery.connectors_with_due_events())
