"""Inbound at the scale the API is for: 1,000 Customers with their addresses and contacts, linked
by external id, replayed, and changed."""

import frappe

from erp_connect.testing.base import our_customers
from erp_connect.testing.inbound import InboundTestCase, customers

COUNT = 1000
ADDRESS_MAP = [
	("address_title", "title", "None", None, 1),
	("address_line1", "street", "None", None, 1),
	("city", "city", "None", None, 1),
	("country", "country", "Constant", "India"),
	("address_type", "kind", "Value Map", '{"billing": "Billing", "shipping": "Shipping"}'),
	("links.link_doctype", "owners[].doctype"),
	("links.link_name", "owners[].customer_id", "External ID Link", "Customer"),
]
CONTACT_MAP = [
	("first_name", "first_name", "None", None, 1),
	("last_name", "last_name"),
	("email_ids.email_id", "emails[].address"),
	("email_ids.is_primary", "emails[].primary"),
	("links.link_doctype", "owners[].doctype"),
	("links.link_name", "owners[].customer_id", "External ID Link", "Customer"),
]


class TestInboundScale(InboundTestCase):
	def setUp(self):
		super().setUp()
		self.connector.reload()
		for doctype in ("Address", "Contact"):
			self.connector.append(
				"allowed_doctypes", {"reference_doctype": doctype, "can_create": 1, "can_update": 1}
			)
		self.connector.save()
		self.make_rule(self.connector.name, "Address", direction="Inbound", field_map=ADDRESS_MAP)
		self.make_rule(self.connector.name, "Contact", direction="Inbound", field_map=CONTACT_MAP)
		frappe.db.commit()
		self.addCleanup(self.delete_addresses_and_contacts)

	def delete_addresses_and_contacts(self):
		for doctype in ("Address", "Contact"):
			names = frappe.get_all(
				"Sync Link",
				{"connector": self.connector.name, "reference_doctype": doctype},
				pluck="reference_name",
			)
			frappe.db.delete("Dynamic Link", {"parenttype": doctype, "parent": ("in", names or [""])})
			frappe.db.delete("Contact Email", {"parent": ("in", names or [""])})
			frappe.db.delete(doctype, {"name": ("in", names or [""])})
		frappe.db.commit()

	def upsert_all(self, doctype: str, records: list) -> dict:
		totals: dict = {}
		for start in range(0, len(records), 250):
			result = self.upsert(records[start : start + 250], doctype=doctype)
			for key in ("created", "updated", "unchanged", "error"):
				totals[key] = totals.get(key, 0) + result[key]
			self.assertEqual(result["error"], 0, [r for r in result["results"] if r["status"] == "error"][:3])
		return totals

	def test_a_thousand_customers_with_addresses_and_contacts_then_replay_then_change(self):

		customer_records = customers(COUNT, prefix="big")
		addresses = [
			{
				"id": f"addr-{i}",
				"title": f"Big {i}",
				"street": f"{i} Main Street",
				"city": "Pune",
				"kind": "billing",
				"owners": [{"doctype": "Customer", "customer_id": f"big-{i}"}],
			}
			for i in range(COUNT)
		]
		contacts = [
			{
				"id": f"person-{i}",
				"first_name": f"Person {i}",
				"last_name": "Big",
				"emails": [{"address": f"person{i}@example.com", "primary": 1}],
				"owners": [{"doctype": "Customer", "customer_id": f"big-{i}"}],
			}
			for i in range(COUNT)
		]
		self.assertEqual(self.upsert_all("Customer", customer_records)["created"], COUNT)
		self.assertEqual(self.upsert_all("Address", addresses)["created"], COUNT)
		self.assertEqual(self.upsert_all("Contact", contacts)["created"], COUNT)

		# every address and contact belongs to the customer its record named
		frappe.db.commit()
		customer_of = dict(
			frappe.get_all(
				"Sync Link",
				{"connector": self.connector.name, "reference_doctype": "Customer"},
				["external_id", "reference_name"],
				as_list=True,
			)
		)
		for doctype, prefix in (("Address", "addr"), ("Contact", "person")):
			local = dict(
				frappe.get_all(
					"Sync Link",
					{"connector": self.connector.name, "reference_doctype": doctype},
					["reference_name", "external_id"],
					as_list=True,
				)
			)
			links = frappe.get_all(
				"Dynamic Link",
				{"parenttype": doctype, "parent": ("in", list(local)), "link_doctype": "Customer"},
				["parent", "link_name"],
			)
			self.assertEqual(len(links), COUNT)
			for link in links:
				number = local[link.parent].removeprefix(prefix + "-")
				self.assertEqual(link.link_name, customer_of[f"big-{number}"])

		# the same batches again: nothing new anywhere
		before = (our_customers(), frappe.db.count("Address"), frappe.db.count("Contact"))
		for doctype, records in (
			("Customer", customer_records),
			("Address", addresses),
			("Contact", contacts),
		):
			self.assertEqual(self.upsert_all(doctype, records)["unchanged"], COUNT)
		self.assertEqual((our_customers(), frappe.db.count("Address"), frappe.db.count("Contact")), before)

		# a changed field updates exactly those records
		for record in addresses[:25]:
			record["city"] = "Mumbai"
		totals = self.upsert_all("Address", addresses)
		self.assertEqual((totals["updated"], totals["unchanged"]), (25, COUNT - 25))
		frappe.db.commit()
		moved = frappe.get_all(
			"Sync Link",
			{
				"connector": self.connector.name,
				"reference_doctype": "Address",
				"external_id": ("in", [f"addr-{i}" for i in range(25)]),
			},
			pluck="reference_name",
		)
		self.assertEqual({frappe.db.get_value("Address", n, "city") for n in moved}, {"Mumbai"})
