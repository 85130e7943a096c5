"""Payment platforms end to end: a fake Stripe and a fake Razorpay post their real payload shapes,
signed their own way, to the site's receive endpoint through a real web server; captured payments
become submitted Payment Entries, refunds their reverse, the rest is parked in Desk."""

import json
import threading
import time

import frappe
from frappe.utils import flt

from erp_connect.install import CONNECT_API_USER, CONNECT_MANAGER
from erp_connect.services.common.locks import lock_name
from erp_connect.services.inbound import inbox
from erp_connect.services.payments import entries
from erp_connect.testing.base import (
	ConnectTestCase,
	HeldOpenTransaction,
	company,
	make_api_user,
	make_customer,
	make_item,
	make_sales_invoice,
	site_http,
	start_worker,
)
from erp_connect.testing.cleanup import delete_test_data
from erp_connect.testing.payments import FakeRazorpay, FakeStripe

PAY_API_USER = "ec-pay-api@example.com"
MANAGER = "ec-pay-manager@example.com"
OUTSIDER = "ec-pay-outsider@example.com"
STRIPE_SECRET = "whsec_" + "5f8d2c1a9b7e4f3a2d1c0b9a8e7f6d5c"
RAZORPAY_SECRET = "rzp-webhook-secret-of-the-test"


class PaymentsTestCase(ConnectTestCase):
	kind = "Stripe"
	secret = STRIPE_SECRET
	fake_class = FakeStripe

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		make_api_user(PAY_API_USER, [CONNECT_API_USER, "Accounts User"])
		cls.manager_key = make_api_user(MANAGER, [CONNECT_MANAGER])
		cls.outsider_key = make_api_user(OUTSIDER, ["Accounts User"])
		cls.company = company()
		cls.bank = frappe.db.get_value("Company", cls.company, "default_bank_account")
		cls.fee_account = frappe.get_all(
			"Account",
			{"company": cls.company, "root_type": "Expense", "is_group": 0, "account_type": ""},
			pluck="name",
			order_by="name",
			limit=1,
		)[0]

	def setUp(self):
		super().setUp()
		self.addCleanup(delete_test_data)
		self.connector = self.make_connector(
			connector_type=self.kind,
			api_user=PAY_API_USER,
			allowed_doctypes=[{"reference_doctype": "Payment Entry", "can_create": 1}],
			receive_doctype="Payment Entry",
			receive_scheme=self.kind,
			receive_secret=self.secret,
			payment_account=self.bank,
			mode_of_payment="Credit Card",
			fee_account=self.fee_account,
		)
		self.customer = make_customer()
		self.item = make_item()
		frappe.db.commit()
		url, session = site_http()
		self.fake = self.fake_class(url, session, self.connector.name, self.secret)

	# -- helpers ------------------------------------------------------------------------------------
	def invoice(self, total=100.0, submit=True):
		invoice = make_sales_invoice(self.customer.name, [(self.item.name, 1, total)], submit=submit)
		frappe.db.commit()
		return invoice

	def stored(self) -> list:
		frappe.db.commit()
		return frappe.get_all(
			"Inbound Request",
			{"connector": self.connector.name},
			["name", "status", "error", "result", "delivery_id"],
			order_by="creation",
		)

	def deliver(self, response) -> dict:
		"""Process what the web server stored for ``response`` (as the inbox's job does)."""
		self.assertEqual(response.status_code, 200, response.text)
		message = response.json()["message"]
		frappe.db.commit()  # a fresh snapshot: the web server's insert is newer than ours
		name = frappe.db.get_value(
			"Inbound Request", {"connector": self.connector.name, "delivery_id": message["delivery_id"]}
		)
		inbox.process(name)
		frappe.db.commit()
		return frappe.get_doc("Inbound Request", name)

	def entries(self, **filters) -> list:
		frappe.db.commit()
		return frappe.get_all(
			"Payment Entry",
			{"party": self.customer.name, "docstatus": 1, **filters},
			["name", "payment_type", "paid_amount", "received_amount", "reference_no", "unallocated_amount"],
		)

	def outstanding(self, invoice) -> float:
		frappe.db.commit()
		return flt(frappe.db.get_value("Sales Invoice", invoice.name, "outstanding_amount"))

	def parked(self) -> list:
		frappe.db.commit()
		return frappe.get_all(
			"Parked Payment",
			{"connector": self.connector.name},
			["name", "status", "reason", "amount", "currency", "transaction_id", "kind", "payment_entry"],
		)


class TestStripePayments(PaymentsTestCase):
	def test_a_captured_payment_becomes_a_submitted_payment_entry_against_its_invoice(self):
		invoice = self.invoice(100)
		pi = self.fake.payment_intent(10000, metadata={"erpnext_invoice": invoice.name})
		request = self.deliver(self.fake.send(self.fake.event("payment_intent.succeeded", pi)))
		self.assertEqual(request.status, "Processed", request.error)
		[entry] = self.entries()
		pe = frappe.get_doc("Payment Entry", entry.name)
		self.assertEqual((pe.payment_type, pe.paid_amount, pe.reference_no), ("Receive", 100, pi["id"]))
		self.assertEqual((pe.paid_to, pe.mode_of_payment, pe.owner), (self.bank, "Credit Card", PAY_API_USER))
		self.assertEqual(
			[(r.reference_doctype, r.reference_name, r.allocated_amount) for r in pe.references],
			[("Sales Invoice", invoice.name, 100)],
		)
		self.assertEqual(self.outstanding(invoice), 0)
		self.assertEqual(json.loads(request.result)["payment_entry"], pe.name)

	def test_a_partial_payment_allocates_its_amount_and_books_the_fee_as_a_deduction(self):
		invoice = self.invoice(100)
		pi = self.fake.payment_intent(6000, metadata={"erpnext_invoice": invoice.name})
		charge = self.fake.charge(pi, fee=204, metadata=pi["metadata"])  # 2.9 % + 30 cents
		request = self.deliver(self.fake.send(self.fake.event("charge.succeeded", charge)))
		self.assertEqual(request.status, "Processed", request.error)
		[entry] = self.entries()
		pe = frappe.get_doc("Payment Entry", entry.name)
		self.assertEqual((pe.paid_amount, pe.received_amount), (57.96, 57.96))  # what reached the bank
		self.assertEqual([r.allocated_amount for r in pe.references], [60])  # what the customer paid
		self.assertEqual([(d.account, d.amount) for d in pe.deductions], [(self.fee_account, 2.04)])
		self.assertEqual((pe.difference_amount, pe.unallocated_amount), (0, 0))
		self.assertEqual(self.outstanding(invoice), 40)
		# Stripe also sends payment_intent.succeeded for the same payment: still one entry
		again = self.deliver(self.fake.send(self.fake.event("payment_intent.succeeded", pi)))
		self.assertEqual((again.status, json.loads(again.result)["action"]), ("Processed", "exists"))
		self.assertEqual(len(self.entries()), 1)
		self.assertEqual(self.outstanding(invoice), 40)

	def test_a_refund_becomes_a_payment_to_the_customer_once(self):
		invoice = self.invoice(100)
		pi = self.fake.payment_intent(10000, metadata={"erpnext_invoice": invoice.name})
		self.deliver(self.fake.send(self.fake.event("payment_intent.succeeded", pi)))
		[paid] = self.entries()
		refund = self.fake.refund(pi, 2500)
		request = self.deliver(self.fake.send(self.fake.event("refund.created", refund)))
		self.assertEqual(request.status, "Processed", request.error)
		[reverse] = self.entries(payment_type="Pay")
		self.assertEqual((reverse.paid_amount, reverse.reference_no), (25, refund["id"]))
		self.assertEqual(reverse.unallocated_amount, 25)  # waits for a credit note to reconcile with
		pe = frappe.get_doc("Payment Entry", reverse.name)
		self.assertEqual((pe.paid_from, pe.party), (self.bank, self.customer.name))
		self.assertIn(paid.name, pe.remarks)
		# the same refund again, as charge.refunded: nothing more
		charge = {**self.fake.charge(pi), "amount_refunded": 2500, "refunds": {"data": [refund]}}
		self.deliver(self.fake.send(self.fake.event("charge.refunded", charge)))
		self.assertEqual(len(self.entries(payment_type="Pay")), 1)

	def test_payments_that_match_nothing_or_another_currency_are_parked(self):
		invoice = self.invoice(100)
		cases = {
			"names nothing": self.fake.payment_intent(1000),
			"does not exist": self.fake.payment_intent(1000, metadata={"erpnext_invoice": "ACC-SINV-NOPE"}),
			"paid in EUR": self.fake.payment_intent(1000, "eur", metadata={"erpnext_invoice": invoice.name}),
		}
		for label, pi in cases.items():
			with self.subTest(label):
				request = self.deliver(self.fake.send(self.fake.event("payment_intent.succeeded", pi)))
				self.assertEqual(request.status, "Processed", request.error)
				self.assertEqual(json.loads(request.result)["action"], "parked")
		parked = {p.transaction_id: p for p in self.parked()}
		self.assertEqual(len(parked), 3)
		self.assertIn("names no invoice", parked[cases["names nothing"]["id"]].reason)
		self.assertIn("does not exist", parked[cases["does not exist"]["id"]].reason)
		eur = parked[cases["paid in EUR"]["id"]]
		self.assertIn("paid in EUR", eur.reason)
		self.assertEqual((eur.status, eur.amount, eur.currency, eur.kind), ("Open", 10, "EUR", "Payment"))
		self.assertEqual(self.entries(), [])
		self.assertEqual(self.outstanding(invoice), 100)

	def test_a_parked_payment_is_allocated_from_desk_by_a_connect_manager_only(self):
		invoice = self.invoice(100)
		pi = self.fake.payment_intent(3000, fee=117)
		# its charge (which names nothing: Stripe keeps the metadata on the payment intent) waits
		# for the payment intent, which names nothing either: parked
		charge = self.deliver(
			self.fake.send(self.fake.event("charge.succeeded", self.fake.charge(pi, fee=117)))
		)
		self.assertEqual(json.loads(charge.result)["action"], "ignored")
		self.deliver(self.fake.send(self.fake.event("payment_intent.succeeded", pi)))
		[parked] = self.parked()
		url = site_http()[0]

		def allocate(key):
			_, session = site_http(*key)
			return session.post(
				f"{url}/api/method/run_doc_method",
				data={
					"dt": "Parked Payment",
					"dn": parked.name,
					"method": "allocate",
					"args": json.dumps({"reference_name": invoice.name}),
				},
			)

		refused = allocate(self.outsider_key)
		self.assertEqual(refused.status_code, 403, refused.text)
		self.assertEqual(self.entries(), [])
		answer = allocate(self.manager_key)
		self.assertEqual(answer.status_code, 200, answer.text)
		[entry] = self.entries()
		self.assertEqual(answer.json()["message"], entry.name)
		self.assertEqual((entry.reference_no, entry.paid_amount), (pi["id"], 28.83))
		self.assertEqual(self.outstanding(invoice), 70)
		[parked] = self.parked()
		self.assertEqual((parked.status, parked.payment_entry), ("Allocated", entry.name))
		self.assertEqual(frappe.db.get_value("Parked Payment", parked.name, "allocated_by"), MANAGER)
		self.assertEqual(allocate(self.manager_key).status_code, 417)  # allocated already
		self.assertEqual(len(self.entries()), 1)
		# and a late event of the same payment finds it recorded
		again = self.deliver(self.fake.send(self.fake.event("payment_intent.succeeded", pi)))
		self.assertEqual(json.loads(again.result)["action"], "exists")

	def test_the_same_event_three_times_twice_at_once_and_two_events_at_once_make_one_payment_entry(self):
		invoice = self.invoice(100)
		pi = self.fake.payment_intent(10000, metadata={"erpnext_invoice": invoice.name})
		event = self.fake.event("payment_intent.succeeded", pi)
		answers = [self.fake.send(event) for _ in range(3)]
		self.assertEqual(
			[a.json()["message"]["status"] for a in answers], ["received", "duplicate", "duplicate"]
		)
		at_once = self.fake.post_at_once(
			[
				self.fake.signed(
					self.fake.event(
						"charge.succeeded", self.fake.charge(pi, metadata=pi["metadata"]), "evt_same"
					)
				)
			]
			* 2
		)
		self.assertEqual(sorted(a.json()["message"]["status"] for a in at_once), ["duplicate", "received"])
		first, second = self.stored()  # two events of one payment
		# the first is being recorded in another connection, not committed yet, when the second
		# arrives: the second waits for the payment's lock, then finds the first's entry
		held = HeldOpenTransaction(
			f"from erp_connect.services.inbound import inbox; inbox.process({first.name!r})"
		)
		self.addCleanup(held.close)
		threading.Timer(2, held.commit).start()
		started = time.monotonic()
		inbox.process(second.name)
		frappe.db.commit()
		self.assertGreater(time.monotonic() - started, 1.5, "the second did not wait for the first")
		self.assertEqual([s.status for s in self.stored()], ["Processed", "Processed"], self.stored())
		self.assertEqual(json.loads(self.stored()[1].result)["action"], "exists")
		self.assertEqual(len(self.entries()), 1)
		self.assertEqual(self.outstanding(invoice), 0)

	def test_recording_a_transaction_holds_its_lock_until_the_transaction_ends(self):
		# what keeps two workers from both finding nothing and both inserting (a deadlock at best)
		name = lock_name("payment", "pi_locked")
		holder = lambda: frappe.db.sql("select is_used_lock(%s)", name)[0][0]  # noqa: E731
		entries.hold("pi_locked")
		self.assertEqual(holder(), frappe.db.sql("select connection_id()")[0][0])
		frappe.db.commit()
		self.assertIsNone(holder())
		entries.hold("pi_locked")
		frappe.db.rollback()
		self.assertIsNone(holder())

	def test_wrong_stale_or_malformed_signatures_are_refused_and_nothing_is_stored(self):
		invoice = self.invoice(100)
		event = self.fake.event(
			"payment_intent.succeeded",
			self.fake.payment_intent(10000, metadata={"erpnext_invoice": invoice.name}),
		)
		body, good = self.fake.signed(event)
		cases = {
			"wrong secret": self.fake.signed(event, secret="whsec_someone_else")[1],
			"stale": self.fake.signed(event, timestamp=int(time.time()) - 301)[1],
			"from the future": self.fake.signed(event, timestamp=int(time.time()) + 400)[1],
			"malformed": {"Stripe-Signature": "v1=" + good["Stripe-Signature"].split("v1=")[1]},
			"unsigned": {},
		}
		for label, headers in cases.items():
			with self.subTest(label):
				self.assertEqual(self.fake.post(body, headers).status_code, 401)
		changed = body.replace(b"10000", b"1000000")
		self.assertEqual(self.fake.post(changed, good).status_code, 401)
		self.assertEqual(self.stored(), [])
		self.assertEqual((self.entries(), self.parked()), ([], []))

	def test_a_delivery_that_fails_is_kept_failed_and_retried_once_the_cause_is_fixed(self):
		draft = self.invoice(100, submit=False)
		pi = self.fake.payment_intent(10000, metadata={"erpnext_invoice": draft.name})
		failed = self.deliver(self.fake.send(self.fake.event("payment_intent.succeeded", pi)))
		self.assertEqual(failed.status, "Failed")
		self.assertIn("is a draft", failed.error)
		self.assertTrue(failed.next_attempt_at)
		self.assertEqual(self.entries(), [])
		frappe.get_doc("Sales Invoice", draft.name).submit()
		frappe.db.commit()
		failed.retry()  # Process Again in Desk
		frappe.db.commit()
		self.assertEqual(self.stored()[0].status, "Processed")
		self.assertEqual(len(self.entries()), 1)

	def test_a_missing_fee_account_or_a_cancelled_invoice_fails_and_leaves_nothing_behind(self):
		frappe.db.set_value("Connector", self.connector.name, "fee_account", None)
		invoice = self.invoice(100)
		pi = self.fake.payment_intent(10000, metadata={"erpnext_invoice": invoice.name}, fee=320)
		failed = self.deliver(self.fake.send(self.fake.event("payment_intent.succeeded", pi)))
		self.assertEqual(failed.status, "Failed")
		self.assertIn("set the Fee Account", failed.error)
		frappe.db.commit()
		self.assertEqual(
			frappe.db.count("Payment Entry", {"party": self.customer.name}), 0
		)  # not even a draft
		# fixed, then picked up by the inbox sweep when it is due
		frappe.db.set_value("Connector", self.connector.name, "fee_account", self.fee_account)
		frappe.db.set_value(
			"Inbound Request", failed.name, "next_attempt_at", frappe.utils.add_to_date(None, minutes=-1)
		)
		frappe.db.commit()
		inbox.sweep()
		frappe.db.commit()
		start_worker(burst=True).wait(timeout=180)
		self.assertEqual(self.stored()[0].status, "Processed", self.stored())
		self.assertEqual(len(self.entries()), 1)

		cancelled = self.invoice(50)
		cancelled.cancel()
		frappe.db.commit()
		pi = self.fake.payment_intent(5000, metadata={"erpnext_invoice": cancelled.name})
		failed = self.deliver(self.fake.send(self.fake.event("payment_intent.succeeded", pi)))
		self.assertEqual(failed.status, "Failed")
		self.assertIn("is cancelled", failed.error)

	def test_a_payment_for_a_sales_order_is_an_advance_against_it(self):
		order = frappe.get_doc(
			{
				"doctype": "Sales Order",
				"company": self.company,
				"customer": self.customer.name,
				"delivery_date": frappe.utils.add_days(frappe.utils.nowdate(), 7),
				"items": [{"item_code": self.item.name, "qty": 2, "rate": 50}],
			}
		).insert()
		order.submit()
		frappe.db.commit()
		pi = self.fake.payment_intent(4000, metadata={"erpnext_order": order.name})
		request = self.deliver(self.fake.send(self.fake.event("payment_intent.succeeded", pi)))
		self.assertEqual(request.status, "Processed", request.error)
		[entry] = self.entries()
		pe = frappe.get_doc("Payment Entry", entry.name)
		self.assertEqual(
			[(r.reference_doctype, r.reference_name, r.allocated_amount) for r in pe.references],
			[("Sales Order", order.name, 40)],
		)
		self.assertEqual(flt(frappe.db.get_value("Sales Order", order.name, "advance_paid")), 40)

	def test_an_api_user_that_may_not_make_payment_entries_fails_with_the_reason(self):
		make_api_user(OUTSIDER.replace("outsider", "no-accounts"), [CONNECT_API_USER])
		frappe.db.set_value(
			"Connector", self.connector.name, "api_user", OUTSIDER.replace("outsider", "no-accounts")
		)
		frappe.db.commit()
		invoice = self.invoice(100)
		pi = self.fake.payment_intent(10000, metadata={"erpnext_invoice": invoice.name})
		failed = self.deliver(self.fake.send(self.fake.event("payment_intent.succeeded", pi)))
		self.assertEqual(failed.status, "Failed")
		self.assertIn("may not", failed.error)
		self.assertIn("Payment Entry", failed.error)
		self.assertEqual(self.entries(), [])

	def test_connector_settings_for_payments(self):
		connector = frappe.get_doc("Connector", self.connector.name)
		for changes, reason in (
			({"receive_doctype": "Customer"}, "webhooks become Payment Entry"),
			({"receive_scheme": "Standard Webhooks"}, "set Signature Scheme to Stripe"),
			({"receive_secret": "sk_live_not_a_webhook_secret"}, "starts with 'whsec_'"),
		):
			with self.subTest(reason):
				connector.reload()
				connector.update(changes)
				self.assertRaisesRegex(frappe.ValidationError, reason, connector.save)

	def test_the_stripe_payments_preset(self):
		connector = self.make_connector(api_user=PAY_API_USER, receive_secret=STRIPE_SECRET)
		steps = connector.apply_preset("Stripe Payments")["next_steps"]
		connector.reload()
		self.assertEqual(
			(connector.connector_type, connector.receive_scheme, connector.receive_doctype),
			("Stripe", "Stripe", "Payment Entry"),
		)
		self.assertEqual([r.reference_doctype for r in connector.allowed_doctypes], ["Payment Entry"])
		self.assertIn("erp_connect.api.v1.receive?connector=", steps)
		self.assertIn("erpnext_invoice", steps)


class TestRazorpayPayments(PaymentsTestCase):
	kind = "Razorpay"
	secret = RAZORPAY_SECRET
	fake_class = FakeRazorpay

	def test_a_captured_payment_with_its_fee_and_then_its_refund(self):
		invoice = self.invoice(100)
		payment = self.fake.payment(10000, "USD", notes={"erpnext_invoice": invoice.name}, fee=236)
		request = self.deliver(self.fake.send(self.fake.captured(payment)))
		self.assertEqual(request.status, "Processed", request.error)
		[entry] = self.entries()
		pe = frappe.get_doc("Payment Entry", entry.name)
		self.assertEqual((pe.reference_no, pe.paid_amount), (payment["id"], 97.64))
		self.assertEqual([(d.account, d.amount) for d in pe.deductions], [(self.fee_account, 2.36)])
		self.assertEqual(self.outstanding(invoice), 0)

		refund = self.fake.refund_processed(payment, 4000)
		request = self.deliver(self.fake.send(refund))
		self.assertEqual(request.status, "Processed", request.error)
		[reverse] = self.entries(payment_type="Pay")
		self.assertEqual(
			(reverse.paid_amount, reverse.reference_no), (40, refund["payload"]["refund"]["entity"]["id"])
		)

	def test_a_partial_payment_and_a_payment_in_another_currency(self):
		invoice = self.invoice(100)
		self.deliver(
			self.fake.send(
				self.fake.captured(self.fake.payment(2500, "USD", notes={"erpnext_invoice": invoice.name}))
			)
		)
		self.assertEqual(self.outstanding(invoice), 75)
		inr = self.fake.payment(500000, "INR", notes={"erpnext_invoice": invoice.name}, fee=11800)
		self.deliver(self.fake.send(self.fake.captured(inr)))
		[parked] = self.parked()
		self.assertEqual((parked.amount, parked.currency), (5000, "INR"))
		self.assertIn("paid in INR", parked.reason)
		self.assertEqual(self.outstanding(invoice), 75)
		# its refund finds no entry to reverse: parked too, to be allocated with it
		refund = self.fake.refund_processed(inr, 100000)
		self.assertEqual(json.loads(self.deliver(self.fake.send(refund)).result)["action"], "parked")
		kinds = sorted((p.kind, p.amount) for p in self.parked())
		self.assertEqual(kinds, [("Payment", 5000), ("Refund", 1000)])
		self.assertEqual(len(self.entries()), 1)

	def test_signatures_event_ids_and_replayed_bodies(self):
		invoice = self.invoice(100)
		event = self.fake.captured(self.fake.payment(10000, "USD", notes={"erpnext_invoice": invoice.name}))
		body, headers = self.fake.signed(event, event_id="KxYzEvent1")
		wrong = {
			**headers,
			"X-Razorpay-Signature": self.fake.signed(event, secret="other")[1]["X-Razorpay-Signature"],
		}
		self.assertEqual(self.fake.post(body, wrong).status_code, 401)
		self.assertEqual(self.fake.post(body, {"x-razorpay-event-id": "KxYzEvent1"}).status_code, 401)
		self.assertEqual(self.stored(), [])
		answers = [self.fake.post(body, headers) for _ in range(3)]
		self.assertEqual(
			[a.json()["message"]["status"] for a in answers], ["received", "duplicate", "duplicate"]
		)
		# the event id header is not signed: the same body under another id is still taken once
		replay = self.fake.post(body, {**headers, "x-razorpay-event-id": "KxYzEvent2"})
		self.assertEqual(replay.json()["message"]["status"], "duplicate")
		[stored] = self.stored()
		self.assertEqual(stored.delivery_id, "KxYzEvent1")
		self.deliver(answers[0])
		self.assertEqual(len(self.entries()), 1)
