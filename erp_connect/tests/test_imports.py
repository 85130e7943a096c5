"""Background imports that a killed worker interrupts: the sweeper finds them, the next run goes on
after the last committed chunk, and no record is written or reported twice."""

import json
import time
from unittest import mock

import frappe

from erp_connect.services.inbound import imports
from erp_connect.testing.base import kill_worker, our_customers, start_worker
from erp_connect.testing.inbound import InboundTestCase, customers


class Killed(BaseException):
	"""Stands for SIGKILL inside the process: nothing after it runs, not even except blocks."""


class TestInterruptedImport(InboundTestCase):
	def start(self, count: int) -> str:
		started = self.http.post(
			f"{self.url}/api/method/erp_connect.api.v1.start_import",
			json={
				"connector": self.connector.name,
				"doctype": "Customer",
				"records": customers(count, "imp"),
			},
		)
		self.assertEqual(started.status_code, 200, started.text)
		return started.json()["message"]["import"]

	def results(self, name: str) -> list[dict]:
		frappe.db.commit()
		job = frappe.get_doc("Sync Import", name)
		return [json.loads(line) for line in imports.results(job).decode().splitlines()]

	def test_a_worker_killed_mid_import_is_resumed_by_the_sweeper(self):
		name = self.start(1000)
		worker = start_worker(burst=False)
		deadline = time.monotonic() + 120
		while time.monotonic() < deadline:
			frappe.db.commit()
			if (frappe.db.get_value("Sync Import", name, "processed") or 0) >= imports.CHUNK:
				break
			time.sleep(0.05)
		kill_worker(worker)
		frappe.db.commit()
		job = frappe.get_doc("Sync Import", name)
		self.assertEqual(job.status, "Running")
		self.assertLess(job.processed, 1000, "the worker finished before it could be killed")

		imports.sweep()  # what the scheduler does every minute
		frappe.db.commit()
		start_worker(burst=True).wait(timeout=300)
		frappe.db.commit()
		job.reload()
		self.assertEqual((job.status, job.processed, job.created_count), ("Done", 1000, 1000))
		self.assertEqual(our_customers(), 1000)
		self.assertEqual([r["index"] for r in self.results(name)], list(range(1000)))

	def test_results_written_before_a_kill_are_not_reported_twice(self):
		name = self.start(3 * imports.CHUNK)
		real_append = imports.append_results
		calls = []

		def append_then_die(*args):
			real_append(*args)
			calls.append(1)
			if len(calls) == 2:  # the second chunk's results are on disk, its progress is not
				raise Killed

		with mock.patch.object(imports, "append_results", append_then_die):
			with self.assertRaises(Killed):
				imports.run(name)
		frappe.db.rollback()
		imports.run(name)  # the next run: after the first chunk, the only one committed
		frappe.db.commit()
		self.assertEqual([r["index"] for r in self.results(name)], list(range(3 * imports.CHUNK)))
		self.assertEqual(our_customers(), 3 * imports.CHUNK)
