"""The PostgreSQL analytics replica end to end: a save → Sync Event → drain → a row in the real
PostgreSQL on 127.0.0.1:5432, in a schema of the test's own (dropped afterwards)."""

import unittest

import frappe

from erp_connect.services.push import replica
from erp_connect.testing.base import TEST_PREFIX, bench, make_customer, make_item, make_sales_invoice
from erp_connect.testing.push import PushTestCase
from erp_connect.testing.servers import port_open

HOST, PORT, DATABASE = "127.0.0.1", 5432, "erp_connect_test"
URL = f"postgresql://postgres@{HOST}:{PORT}/{DATABASE}"


def _connect(database: str = DATABASE):
	import psycopg

	return psycopg.connect(
		f"postgresql://postgres@{HOST}:{PORT}/{database}", autocommit=True, row_factory=psycopg.rows.dict_row
	)


@unittest.skipUnless(port_open(PORT, HOST), "no PostgreSQL on 127.0.0.1:5432")
class TestReplica(PushTestCase):
	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		with _connect("postgres") as admin:
			cls.made_database = not admin.execute(
				"select 1 from pg_database where datname = %s", [DATABASE]
			).fetchone()
			if cls.made_database:
				admin.execute(f'create database "{DATABASE}"')

	@classmethod
	def tearDownClass(cls):
		if cls.made_database:
			with _connect("postgres") as admin:
				admin.execute(f'drop database if exists "{DATABASE}" with (force)')
		super().tearDownClass()

	def setUp(self):
		super().setUp()
		self.schema = "erp_connect_t_" + frappe.generate_hash(length=8).lower()
		self.addCleanup(self.drop_schema)
		self.connector = self.make_connector(
			connector_type="PostgreSQL", base_url=URL, replica_schema=self.schema, timeout_seconds=5
		)

	def drop_schema(self):
		with _connect() as conn:
			conn.execute(f'drop schema if exists "{self.schema}" cascade')

	def replica_rule(self, doctype="Customer", **fields):
		return self.make_rule(
			self.connector.name,
			doctype,
			("after_insert", "on_update", "on_trash"),
			payload_mode="Whole Document",
			target_path="",
			**fields,
		)

	def rows(self, table="customer", where="true", params=()):
		with _connect() as conn:
			return conn.execute(
				f'select * from "{self.schema}"."{table}" where {where} order by name', params
			).fetchall()

	def test_a_saved_customer_is_a_row_its_update_a_newer_row_its_deletion_a_flag(self):
		self.replica_rule()
		customer = make_customer(TEST_PREFIX + "Replica Co")
		self.drain()
		(row,) = self.rows(where="name = %s", params=[customer.name])
		self.assertEqual(row["customer_name"], TEST_PREFIX + "Replica Co")
		self.assertEqual(row["customer_group"], "All Customer Groups")
		self.assertIs(row["disabled"], False)
		self.assertIs(row["_deleted"], False)
		self.assertEqual(row["modified"], frappe.db.get_value("Customer", customer.name, "modified"))
		self.assertTrue(all(e.status == "Delivered" for e in self.events_of(customer)))

		customer.reload()
		customer.customer_name = TEST_PREFIX + "Replica Co Renamed"
		customer.disabled = 1
		customer.save()
		self.drain()
		(row,) = self.rows(where="name = %s", params=[customer.name])
		self.assertEqual(row["customer_name"], TEST_PREFIX + "Replica Co Renamed")
		self.assertIs(row["disabled"], True)
		self.assertEqual(row["modified"], frappe.db.get_value("Customer", customer.name, "modified"))

		customer.delete()
		self.drain()
		(row,) = self.rows(where="name = %s", params=[customer.name])
		self.assertIs(row["_deleted"], True)
		self.assertEqual(row["customer_name"], TEST_PREFIX + "Replica Co Renamed")
		events = self.events_of(customer)
		self.assertEqual([e.doc_event for e in events][-1], "on_trash")
		self.assertTrue(all(e.status == "Delivered" for e in events), [e.last_error for e in events])

	def test_child_tables_are_tables_typed_from_the_meta(self):
		self.replica_rule()
		company = frappe.db.get_value("Company", {}, "name")
		customer = make_customer(credit_limits=[{"company": company, "credit_limit": 1234.5}])
		self.drain()
		(line,) = self.rows("customer_credit_limit", "parent = %s", [customer.name])
		self.assertEqual(float(line["credit_limit"]), 1234.5)
		self.assertEqual((line["parentfield"], line["parenttype"]), ("credit_limits", "Customer"))
		with _connect() as conn:
			types = {
				r["column_name"]: r["data_type"]
				for r in conn.execute(
					"select column_name, data_type from information_schema.columns"
					" where table_schema = %s and table_name = 'customer'",
					[self.schema],
				)
			}
		self.assertEqual(types["disabled"], "boolean")
		self.assertEqual(types["modified"], "timestamp without time zone")
		self.assertEqual(types["customer_name"], "text")
		self.assertNotIn("credit_limits", types)

	def test_a_replica_that_cannot_be_reached_is_retried(self):
		self.connector.base_url = "postgresql://postgres@127.0.0.1:1/nowhere"
		self.connector.save()
		self.replica_rule()
		customer = make_customer()
		self.drain()
		first, *later = self.events_of(customer)  # an insert is after_insert and on_update
		self.assertEqual(first.status, "Retrying")
		self.assertIn("OperationalError", first.last_error)
		self.assertTrue(all(e.status == "Pending" for e in later))  # waiting for the first, in order

	def test_the_workspace_shows_the_lag_of_the_replicas_alone(self):
		from frappe.utils import add_to_date, now_datetime

		from erp_connect.api import dashboard

		self.connector.base_url = "postgresql://postgres@127.0.0.1:1/nowhere"  # nothing gets through
		self.connector.save()
		self.replica_rule()
		webhook = self.make_connector(connector_type="Webhook", base_url="http://127.0.0.1:1/")
		self.make_rule(webhook.name, "Customer", ("after_insert",))
		customer = make_customer()
		self.assertLess(dashboard.replica_lag()["value"], 5)  # just saved
		mine = [e.name for e in self.events_of(customer) if e.connector == self.connector.name]
		other = [e.name for e in self.events_of(customer) if e.connector == webhook.name]
		age = "update `tabSync Event` set creation = %s where name in %s"
		frappe.db.sql(age, (add_to_date(now_datetime(), seconds=-90), mine))
		frappe.db.sql(age, (add_to_date(now_datetime(), seconds=-900), other))  # not the replica's lag
		self.assertTrue(90 <= dashboard.replica_lag()["value"] < 120)
		frappe.db.sql("update `tabSync Event` set status = 'Delivered' where name in %s", [mine])
		self.assertEqual(dashboard.replica_lag()["value"], 0)
		card = frappe.get_doc("Number Card", "Replica Lag")
		self.assertEqual(card.method, "erp_connect.api.dashboard.replica_lag")

	def test_a_replica_on_a_private_address_needs_allow_private_network(self):
		self.connector.allow_private_network = 0
		self.connector.save()
		self.replica_rule()
		customer = make_customer()
		self.drain()
		first = self.events_of(customer)[0]
		self.assertEqual(first.status, "Dead")
		self.assertIn("non-public address", first.last_error)

	def test_the_base_url_and_schema_are_checked_for_the_kind(self):
		self.assertEqual(self.connector.base_url, URL)
		with self.assertRaises(frappe.ValidationError):
			self.make_connector(connector_type="Webhook", base_url=URL)
		with self.assertRaises(frappe.ValidationError):
			self.make_connector(connector_type="PostgreSQL", base_url="https://db.example.com")
		with self.assertRaises(frappe.ValidationError):
			self.make_connector(connector_type="PostgreSQL", base_url=URL, replica_schema="pg_catalog")
		result = self.connector.test_connection()
		self.assertTrue(result["ok"], result)

	def test_the_first_sync_copies_the_documents_already_there_and_resumes(self):
		before = [make_customer() for _ in range(3)]
		frappe.db.commit()
		rule = self.replica_rule()
		frappe.db.commit()
		self.assertEqual(frappe.db.get_value("Sync Rule", rule.name, "backfill_status"), "Queued")
		first = replica.backfill(rule.name, max_seconds=0, chunk=2)  # one chunk, then it hands over
		self.assertEqual(
			(first.status, first.copied, first.total), ("Running", 2, frappe.db.count("Customer"))
		)
		self.assertEqual(len(self.rows()), 2)
		done = replica.backfill(rule.name, chunk=2)  # goes on after the cursor
		self.assertEqual((done.status, done.copied), ("Done", frappe.db.count("Customer")))
		names = [r["name"] for r in self.rows()]
		self.assertEqual(len(names), len(set(names)))
		self.assertEqual(len(names), frappe.db.count("Customer"))
		self.assertTrue({c.name for c in before} <= set(names))

	def test_the_backfill_copies_every_value_exactly_escapes_and_all(self):
		tricky = 'tab\there, new\nline, back\\slash \\N, "quoted", cr\rend, ünïcødé ✓'
		customer = make_customer(
			customer_details=tricky,
			credit_limits=[{"company": frappe.db.get_value("Company", {}), "credit_limit": 7.25}],
		)
		frappe.db.set_value("Customer", customer.name, "customer_details", tricky)  # as stored
		frappe.db.commit()
		rule = self.replica_rule()
		frappe.db.commit()
		self.assertEqual(replica.backfill(rule.name, chunk=500)["status"], "Done")
		(row,) = self.rows("customer", "name = %s", [customer.name])
		stored = frappe.db.get_value(
			"Customer", customer.name, ["customer_details", "modified", "creation"], as_dict=True
		)
		self.assertEqual(row["customer_details"], tricky)
		self.assertEqual(row["modified"], stored.modified)
		self.assertEqual(row["creation"], stored.creation)
		self.assertEqual((row["_deleted"], row["_cancelled"], row["_event_id"]), (False, False, None))
		(limit,) = self.rows("customer_credit_limit", "parent = %s", [customer.name])
		self.assertEqual((float(limit["credit_limit"]), limit["parentfield"]), (7.25, "credit_limits"))

	def test_a_chunk_too_large_to_join_in_one_value_is_read_row_by_row(self):
		from unittest.mock import patch

		tricky = 'a line\nbreak, "quoted", ünïcødé'
		customers = [make_customer(customer_details=tricky) for _ in range(3)]
		frappe.db.commit()
		rule = self.replica_rule()
		frappe.db.commit()

		def small_limit():  # as a packet too small for the chunk's lines would cut them
			frappe.db.sql("set session group_concat_max_len = 200")
			return 200

		from erp_connect.engine.transports.postgres_replica import PostgresReplicaTransport

		# read again row by row: still lines MariaDB wrote, not the value-by-value path
		slow_path = AssertionError("copied value by value")
		with (
			patch.object(replica, "_joined_value_limit", small_limit),
			patch.object(PostgresReplicaTransport, "backfill", side_effect=slow_path),
		):
			done = replica.backfill(rule.name, chunk=500)
		self.assertEqual((done.status, done.copied), ("Done", frappe.db.count("Customer")))
		for customer in customers:
			(row,) = self.rows("customer", "name = %s", [customer.name])
			self.assertEqual(row["customer_details"], tricky)

	def test_a_chunk_postgresql_refuses_as_mariadb_wrote_it_is_copied_value_by_value(self):
		from unittest.mock import patch

		from erp_connect.engine.transports.postgres_replica import NotCopyable, PostgresReplicaTransport

		customers = [make_customer() for _ in range(3)]
		frappe.db.commit()
		rule = self.replica_rule()
		frappe.db.commit()
		with patch.object(PostgresReplicaTransport, "backfill_lines", side_effect=NotCopyable("time 25:00")):
			done = replica.backfill(rule.name, chunk=2)
		self.assertEqual((done.status, done.copied), ("Done", frappe.db.count("Customer")))
		names = {r["name"] for r in self.rows()}
		self.assertEqual(len(names), frappe.db.count("Customer"))
		self.assertTrue({c.name for c in customers} <= names)

	def test_rebuild_table_command_drops_and_copies_again(self):
		rule = self.replica_rule()
		customer = make_customer(
			credit_limits=[{"company": frappe.db.get_value("Company", {}), "credit_limit": 7}]
		)
		frappe.db.commit()
		with _connect() as conn:  # a table that went wrong
			conn.execute(f'create schema if not exists "{self.schema}"')
			conn.execute(f'create table "{self.schema}".customer (name text primary key, modified timestamp)')
			conn.execute(f"insert into \"{self.schema}\".customer values ('stale', now())")
		result = bench("rebuild-table", self.connector.name, "Customer")
		self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
		self.assertIn("Customer: Done", result.stdout)
		names = {r["name"] for r in self.rows()}
		self.assertNotIn("stale", names)
		self.assertIn(customer.name, names)
		self.assertEqual(len(self.rows("customer_credit_limit", "parent = %s", [customer.name])), 1)
		self.assertEqual(frappe.db.get_value("Sync Rule", rule.name, "backfill_status"), "Done")
		self.assertEqual(bench("rebuild-table", self.connector.name, "Item").returncode, 2)

	def test_a_backfill_whose_job_died_is_queued_again_by_the_sweep(self):
		from frappe.utils import now_datetime
		from frappe.utils.background_jobs import is_job_enqueued

		rule = self.replica_rule()
		frappe.db.set_value("Sync Rule", rule.name, "backfill_status", "Running")  # its worker died
		frappe.db.commit()
		minutes = {now_datetime().strftime("%Y%m%d%H%M")}
		replica.sweep()
		minutes.add(now_datetime().strftime("%Y%m%d%H%M"))
		self.assertTrue(any(is_job_enqueued(f"erp_connect:backfill:{rule.name}:{m}") for m in minutes))

	def test_a_submitted_invoice_is_in_sales_by_day_until_it_is_cancelled(self):
		self.make_rule(
			self.connector.name,
			"Sales Invoice",
			("on_submit", "on_cancel"),
			payload_mode="Whole Document",
			target_path="",
		)
		item = make_item()
		invoice = make_sales_invoice(make_customer().name, [(item.name, 2, 10.125), (item.name, 1, 5)])
		self.drain()
		(row,) = self.rows("sales_invoice", "name = %s", [invoice.name])
		self.assertEqual((row["docstatus"], row["_cancelled"]), (1, False))
		self.assertEqual(float(row["base_grand_total"]), invoice.base_grand_total)
		lines = self.rows("sales_invoice_item", "parent = %s", [invoice.name])
		self.assertEqual(sorted(float(r["qty"]) for r in lines), [1.0, 2.0])
		sales_by_day = f"""select posting_date as day, count(*) as invoices, sum(base_grand_total) as revenue
			from "{self.schema}".sales_invoice where docstatus = 1 and not _deleted and not _cancelled
			group by posting_date order by posting_date"""
		with _connect() as conn:
			(day,) = conn.execute(sales_by_day).fetchall()
		self.assertEqual((str(day["day"]), day["invoices"]), (str(invoice.posting_date), 1))
		self.assertEqual(float(day["revenue"]), invoice.base_grand_total)
		best_sellers = f"""select i.item_code, sum(i.qty) as qty, sum(i.base_net_amount) as amount
			from "{self.schema}".sales_invoice s
			join "{self.schema}".sales_invoice_item i on i.parent = s.name and i.parenttype = 'Sales Invoice'
			where s.docstatus = 1 and not s._deleted and s.posting_date > current_date - 30
			group by i.item_code order by amount desc limit 20"""
		with _connect() as conn:
			(best,) = conn.execute(best_sellers).fetchall()
		self.assertEqual((best["item_code"], float(best["qty"])), (item.name, 3.0))

		invoice.reload()
		invoice.cancel()
		self.drain()
		(row,) = self.rows("sales_invoice", "name = %s", [invoice.name])
		self.assertEqual((row["docstatus"], row["_cancelled"]), (2, True))
		with _connect() as conn:
			self.assertEqual(conn.execute(sales_by_day).fetchall(), [])

	def test_the_analytics_preset_takes_a_sales_invoice_to_sales_by_day(self):
		made = self.connector.apply_preset("Analytics Replica (PostgreSQL)")
		self.assertEqual(len(made["created"]), 4)
		self.connector.reload()
		self.assertEqual(self.connector.base_url, URL)  # a PostgreSQL URL already: kept
		invoice = make_sales_invoice(make_customer().name, [(make_item().name, 3, 7)])
		self.drain()
		(row,) = self.rows("sales_invoice", "name = %s", [invoice.name])
		self.assertEqual((row["docstatus"], float(row["base_grand_total"])), (1, invoice.base_grand_total))
		self.assertEqual(len(self.rows("customer", "name = %s", [invoice.customer])), 1)
		self.assertEqual(len(self.rows("sales_invoice_item", "parent = %s", [invoice.name])), 1)
