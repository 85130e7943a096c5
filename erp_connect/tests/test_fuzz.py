"""Property tests over the inbound endpoints, over real HTTP: whatever arrives, the answer is never
a 5xx, and a rejected request changes nothing."""

import frappe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from erp_connect.engine import signing
from erp_connect.testing.base import site_http
from erp_connect.testing.inbound import InboundTestCase

HOSTILE = [
	"'; drop table tabCustomer; --",
	"{{ frappe.db.sql('select 1') }}",
	"<script>x</script>",
	"%s",
	"\x00",
]
scalars = (
	st.none()
	| st.booleans()
	| st.integers()
	| st.floats(allow_nan=False, allow_infinity=False)
	| st.text(max_size=12)
	| st.sampled_from(HOSTILE)
)
json_values = st.recursive(
	scalars,
	lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
	max_leaves=8,
)
field_names = st.sampled_from(
	["id", "name", "type", "customer_name", "owner", "docstatus", "doctype", *HOSTILE]
)
records = st.one_of(
	st.text(max_size=12),  # records sent as text, which must then be JSON
	json_values,
	st.lists(st.dictionaries(field_names | st.text(max_size=8), json_values, max_size=5), max_size=4),
)
# mostly calls that pass the access checks, so the fuzzing reaches the parsing and the writing
connectors = st.sampled_from(["ours"] * 8 + ["", "missing", *HOSTILE])
doctypes = st.sampled_from(["Customer"] * 8 + ["Sales Invoice", "User", "DocType", "", *HOSTILE])
header_values = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40)
FUZZ = settings(
	max_examples=100,
	deadline=None,
	suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def snapshot() -> tuple:
	frappe.db.commit()  # a fresh read of what the web server committed
	return tuple(
		frappe.db.count(d) for d in ("Customer", "Sync Link", "Idempotency Record", "Inbound Request")
	)


class TestFuzz(InboundTestCase):
	def setUp(self):
		super().setUp()
		self.addCleanup(self.delete_what_the_connector_wrote)

	def delete_what_the_connector_wrote(self):
		links = frappe.get_all(
			"Sync Link", {"connector": self.connector.name}, ["reference_doctype", "reference_name"]
		)
		for link in links:
			if frappe.db.exists(link.reference_doctype, link.reference_name):
				frappe.delete_doc(
					link.reference_doctype, link.reference_name, force=True, ignore_permissions=True
				)
		frappe.db.commit()

	@FUZZ
	@given(connector=connectors, doctype=doctypes, records=records, atomic=json_values)
	def test_upsert_never_fails_with_5xx_and_rejected_calls_change_nothing(
		self, connector, doctype, records, atomic
	):
		before = snapshot()
		body = {
			"connector": self.connector.name if connector == "ours" else connector,
			"doctype": doctype,
			"records": records,
			"atomic": atomic,
		}
		response = self.http.post(f"{self.url}/api/method/erp_connect.api.v1.upsert", json=body)
		self.assertLess(response.status_code, 500, response.text[:2000])
		if response.status_code >= 400:
			self.assertEqual(snapshot(), before, response.text[:500])
		else:
			result = response.json()["message"]
			self.assertEqual(snapshot()[0] - before[0], result["created"])
			counted = result["created"] + result["updated"] + result["unchanged"] + result["error"]
			self.assertEqual(len(result["results"]), counted)

	@FUZZ
	@given(
		connector=st.sampled_from(["ours"] * 4 + ["", "missing"]),
		body=st.binary(max_size=300),
		headers=st.dictionaries(
			st.sampled_from(
				["webhook-id", "webhook-timestamp", "webhook-signature", "X-Shopify-Hmac-Sha256"]
			),
			header_values,
			max_size=3,
		),
	)
	def test_receive_never_fails_with_5xx_and_stores_nothing_unsigned(self, connector, body, headers):
		if not frappe.db.get_value("Connector", self.connector.name, "receive_doctype"):
			receiver = frappe.get_doc("Connector", self.connector.name)
			receiver.update({"receive_doctype": "Customer", "receive_secret": signing.generate_secret()})
			receiver.save()
			frappe.db.commit()
		before = snapshot()
		url, guest = site_http()
		response = guest.post(
			f"{url}/api/method/erp_connect.api.v1.receive",
			params={"connector": self.connector.name if connector == "ours" else connector},
			data=body,
			headers={"Content-Type": "text/plain", **headers},
		)
		self.assertLess(response.status_code, 500, response.text[:2000])
		self.assertGreaterEqual(response.status_code, 400)  # nothing here is signed with the secret
		self.assertEqual(snapshot(), before)
