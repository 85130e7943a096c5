"""Input that is wrong in ways the happy path never shows: templates that fail on one document,
external ids that the database would fold together or cannot hold, requests that lack their
arguments, and two calls racing with one Idempotency-Key. Each is refused or reported on its own,
with a 4xx or a per-record error, and changes nothing else."""

import threading

import frappe

from erp_connect.engine.cursor import Cursor
from erp_connect.testing.base import TEST_PREFIX, make_customer, our_customers
from erp_connect.testing.inbound import InboundTestCase, customers
from erp_connect.testing.push import PushTestCase

FAILING_TEMPLATE = "{{ 1 // 0 }}"


class TestTemplates(PushTestCase):
	def test_a_template_that_fails_on_a_document_does_not_block_its_save(self):
		self.make_rule(
			self.connector.name,
			"Customer",
			("after_insert",),
			[("name", "id"), ("customer_name", "label", "Template", FAILING_TEMPLATE)],
		)
		customer = make_customer()  # raised ZeroDivisionError out of the user's save
		[event] = self.events_of(customer)
		self.assertEqual(event.status, "Dead")
		self.assertIn("Mapping failed", event.last_error)
		self.assertIn("label: template failed", event.last_error)

	def test_a_template_that_cannot_compile_is_refused_when_the_rule_is_saved(self):
		with self.assertRaisesRegex(frappe.ValidationError, "Row 2: .*template"):
			self.make_rule(
				self.connector.name,
				"Customer",
				("after_insert",),
				[("name", "id"), ("customer_name", "label", "Template", "{{ doc.name ")],
			)


class TestFeedRendering(InboundTestCase):
	def test_a_document_that_fails_to_render_is_a_per_record_error_not_a_500(self):
		frappe.db.set_value(
			"Connector Access",
			{"parent": self.connector.name, "reference_doctype": "Customer"},
			"can_read",
			1,
		)
		self.make_rule(
			self.connector.name,
			"Customer",
			field_map=[("name", "id"), ("customer_name", "label", "Template", FAILING_TEMPLATE)],
		)
		frappe.db.commit()
		name = self.upsert(customers(1))["results"][0]["name"]
		frappe.db.set_value("Customer", name, "modified", "2099-03-01 00:00:00", update_modified=False)
		frappe.db.commit()
		start = Cursor(modified="2099-02-28 00:00:00", deleted_at="2099-02-28 00:00:00").encode()
		response = self.http.get(
			f"{self.url}/api/method/erp_connect.api.v1.changes",
			params={"connector": self.connector.name, "doctype": "Customer", "cursor": start},
		)
		self.assertEqual(response.status_code, 200, response.text)
		[record] = response.json()["message"]["records"]
		self.assertEqual((record["name"], record["data"]), (name, None))
		self.assertIn("template failed", record["error"])


class TestExternalIds(InboundTestCase):
	def test_ids_match_exactly_whatever_the_database_collation_folds(self):
		variants = ["ABC", "abc", "abc ", "café", "cafe"]
		records = [
			{"id": v, "name": f"{TEST_PREFIX}id {i}", "type": "company"} for i, v in enumerate(variants)
		]
		result = self.upsert(records)
		self.assertEqual(result["created"], 5, result)
		self.assertEqual(len({r["name"] for r in result["results"]}), 5)
		again = self.upsert(records)
		self.assertEqual(again["unchanged"], 5, again)
		for i, variant in enumerate(variants):
			self.assertEqual(again["results"][i]["name"], result["results"][i]["name"], variant)

	def test_an_id_the_link_cannot_hold_fails_alone(self):
		records = customers(2)
		records[0]["id"] = "x" * 141
		records.append({"id": 10**30, "name": f"{TEST_PREFIX}huge", "type": "company"})
		result = self.upsert(records)  # the batched link INSERT failed: 500 for the whole call
		self.assertEqual([r["status"] for r in result["results"]], ["error", "created", "error"], result)
		self.assertIn("at most 140 characters", result["results"][0]["error"])
		self.assertEqual(our_customers(), 1)


class TestMalformedCalls(InboundTestCase):
	def test_a_call_without_its_arguments_gets_400_naming_them(self):
		url = f"{self.url}/api/method/erp_connect.api.v1"
		response = self.http.post(f"{url}.upsert", json={})
		self.assertEqual(response.status_code, 400, response.text)  # was a TypeError: 500
		self.assertIn("connector", response.text)
		response = self.http.post(f"{url}.upsert", json={"connector": self.connector.name})
		self.assertEqual(response.status_code, 400, response.text)
		self.assertIn("doctype", response.text)
		response = self.http.get(f"{url}.changes", params={"connector": self.connector.name})
		self.assertEqual(response.status_code, 400, response.text)
		response = self.http.get(f"{url}.import_status", params={"connector": self.connector.name})
		self.assertEqual(response.status_code, 400, response.text)


class TestIdempotencyRace(InboundTestCase):
	def test_two_racing_atomic_calls_with_one_key_write_once_and_get_one_answer(self):
		batch = [*customers(150, prefix="race"), {"id": "bad", "name": "", "type": "company"}]
		answers = []

		def call():
			response = self.call(batch, headers={"Idempotency-Key": "race-key-1"}, atomic=True)
			answers.append(response)

		threads = [threading.Thread(target=call) for _ in range(2)]
		for t in threads:
			t.start()
		for t in threads:
			t.join(120)
		self.assertEqual([a.status_code for a in answers], [200, 200], [a.text[:300] for a in answers])
		first, second = (a.json()["message"] for a in answers)
		# the loser waited for the winner and replayed its answer; it did not run the batch again
		self.assertEqual(first["correlation_id"], second["correlation_id"])
		frappe.db.commit()
		kept = frappe.get_all(
			"Idempotency Record", {"connector": self.connector.name, "idempotency_key": "race-key-1"}
		)
		self.assertEqual(len(kept), 1)
		self.assertEqual(our_customers(), 0)
