"""Event streams end to end in a real site: a Customer save -> Sync Event -> the real drain -> the
real NATS JetStream server on 127.0.0.1:4222, read back with a consumer of the test's own; and a
pull rule reading a durable consumer of that server into Customers."""

import secrets
import socket
import time
from unittest.mock import patch

import frappe

from erp_connect.engine.transports.nats_jetstream import NatsJetStreamTransport, durable_name
from erp_connect.services.pull import runs
from erp_connect.testing.base import TEST_PREFIX, make_customer, our_customers
from erp_connect.testing.pull import CUSTOMERS_ALLOWED, PULL_USER, PullTestCase, remote_customers
from erp_connect.testing.push import CUSTOMER_MAP, PushTestCase
from erp_connect.testing.servers import NATS_URL, js_call


def closed_port() -> int:
	with socket.create_server(("127.0.0.1", 0)) as s:
		return s.getsockname()[1]


class TestNatsJetStream(PushTestCase):
	fake_remote = False

	def setUp(self):
		super().setUp()
		from nats.js.api import StreamConfig

		self.stream = f"ERPTEST_{secrets.token_hex(4)}"
		self.root = f"erptest{secrets.token_hex(4)}"
		config = StreamConfig(name=self.stream, subjects=[f"{self.root}.>"], duplicate_window=120.0)
		js_call(lambda js: js.add_stream(config))
		self.addCleanup(js_call, lambda js: js.delete_stream(self.stream))
		self.connector = self.make_connector(
			connector_type="NATS JetStream", base_url=NATS_URL, allow_private_network=1, timeout_seconds=3
		)
		self.make_rule(
			self.connector.name,
			"Customer",
			("after_insert", "on_update"),
			CUSTOMER_MAP,
			target_path=self.root + ".{doctype}.{event}",
		)
		frappe.db.commit()

	def stored(self) -> list:
		async def read(js):
			count = (await js.stream_info(self.stream)).state.messages
			return [await js.get_msg(self.stream, seq) for seq in range(1, count + 1)]

		return js_call(read)

	def test_a_customer_save_reaches_the_stream_through_the_drain(self):
		reached = self.connector.test_connection()
		self.assertTrue(reached["ok"], reached)
		self.assertIn("JetStream", reached["message"])
		customer = make_customer()
		stats = self.drain()
		events = self.events_of(customer)
		self.assertTrue(events)
		self.assertEqual({e.status for e in events}, {"Delivered"}, stats)

		messages = self.stored()
		self.assertEqual(len(messages), len(events))
		first = messages[0]
		self.assertEqual(first.subject, f"{self.root}.customer.after_insert")
		self.assertEqual(first.headers["Nats-Msg-Id"], events[0].event_id)
		self.assertEqual(first.headers["erp-event-seq"], "1")
		body = frappe.parse_json(first.data.decode())
		self.assertEqual((body["id"], body["name"], body["seq"]), (events[0].event_id, customer.name, 1))
		self.assertEqual(body["data"]["id"], customer.name)

	def test_an_unreachable_broker_retries_and_then_delivers_everything_in_document_order(self):
		self.connector.base_url = f"nats://127.0.0.1:{closed_port()}"
		self.connector.save()
		customers = [make_customer() for _ in range(3)]
		for customer in customers:
			for n in range(2):
				customer.reload()
				customer.customer_details = f"edit {n}"
				customer.save()
		self.drain()
		for customer in customers:
			events = self.events_of(customer)
			self.assertGreaterEqual(len(events), 3)
			self.assertEqual(events[0].status, "Retrying")
			self.assertIn("cannot connect", events[0].last_error or "")
			self.assertEqual({e.status for e in events[1:]}, {"Pending"})  # behind the first
		self.assertEqual(self.stored(), [])

		self.connector.base_url = NATS_URL
		self.connector.save()
		for _ in range(5):  # bounded: each round sends what became due
			self.make_due(*customers)
			self.drain()
			if all(e.status == "Delivered" for c in customers for e in self.events_of(c)):
				break
		expected = {c.name: [e.seq for e in self.events_of(c)] for c in customers}
		self.assertEqual(
			{e.status for c in customers for e in self.events_of(c)}, {"Delivered"}, "all delivered"
		)
		seen: dict[str, list[int]] = {}
		for message in self.stored():
			body = frappe.parse_json(message.data.decode())
			seen.setdefault(body["name"], []).append(body["seq"])
		self.assertEqual(seen, expected)  # each document's events arrived once, in order


class TestNatsJetStreamPull(PullTestCase):
	"""A pull rule reading a durable consumer: messages are acked only after their upsert committed."""

	fake_remote = False

	def setUp(self):
		super().setUp()
		from nats.js.api import StreamConfig

		self.stream = f"ERPTEST_{secrets.token_hex(4)}"
		self.root = f"erptest{secrets.token_hex(4)}"
		config = StreamConfig(name=self.stream, subjects=[f"{self.root}.>"])
		js_call(lambda js: js.add_stream(config))
		self.addCleanup(js_call, lambda js: js.delete_stream(self.stream))
		self.connector = self.make_connector(
			connector_type="NATS JetStream",
			base_url=NATS_URL,
			allow_private_network=1,
			timeout_seconds=3,
			api_user=PULL_USER,
			allowed_doctypes=CUSTOMERS_ALLOWED,
		)
		self.rule = self.make_pull_rule(list_path=f"{self.root}.customers.>", records_path="", page_size=2)

	def publish(self, records: list[dict]) -> None:
		async def publish(js):
			for record in records:
				await js.publish(f"{self.root}.customers.changed", frappe.as_json(record).encode())

		js_call(publish)

	def consumer(self):
		return js_call(lambda js: js.consumer_info(self.stream, durable_name(self.rule.name)))

	def test_a_pull_rule_reads_the_stream_and_acks_only_what_it_committed(self):
		self.assertEqual(self.rule.pagination_style, "Stream Consumer")  # the kind's default
		customers = remote_customers(3)
		self.publish(customers)
		with (
			patch.object(NatsJetStreamTransport, "ack_wait", 1.0),
			patch.object(runs.Puller, "save_position", side_effect=RuntimeError("killed before commit")),
		):
			failed = self.run_pull(self.rule)
		self.assertEqual(failed.status, "Failed")
		self.assertEqual(our_customers(), 0)  # rolled back
		self.assertEqual(self.consumer().num_ack_pending, 2)  # read, never acked

		time.sleep(1.5)  # past the ack wait: JetStream hands them out again
		run = self.run_pull(self.rule)
		self.assertEqual((run.status, run.created, run.failed), ("Succeeded", 3, 0), run.message)
		self.assertEqual(self.customer_of("c00001").customer_name, customers[1]["name"])
		info = self.consumer()
		self.assertEqual((info.num_pending, info.num_ack_pending), (0, 0))

		self.publish([{**customers[0], "name": customers[0]["name"] + " renamed"}, customers[1]])
		self.publish_raw(b"not json")
		again = self.run_pull(self.rule)
		self.assertEqual((again.updated, again.unchanged, again.failed), (1, 1, 1))
		self.assertIn("not JSON", again.errors[0].error)
		self.assertEqual(self.customer_of("c00000").customer_name, customers[0]["name"] + " renamed")
		self.assertEqual(self.consumer().num_pending, 0)

	def publish_raw(self, body: bytes) -> None:
		js_call(lambda js: js.publish(f"{self.root}.customers.changed", body))


class TestRabbitMqPull(PullTestCase):
	"""A pull rule reading a RabbitMQ queue: a message is acked only after its upsert committed, and
	one handed out again (a consumer killed between write and ack) makes no second document."""

	fake_remote = False
	url = "amqp://guest:guest@127.0.0.1:5672/%2F"

	def setUp(self):
		super().setUp()
		import pika

		self.queue = f"erp_connect_test_{secrets.token_hex(4)}"
		connection = pika.BlockingConnection(pika.URLParameters(self.url))
		self.addCleanup(connection.close)
		self.channel = connection.channel()
		self.channel.queue_declare(self.queue)
		self.addCleanup(self.channel.queue_delete, self.queue)
		self.connector = self.make_connector(
			connector_type="RabbitMQ",
			base_url=self.url,
			allow_private_network=1,
			timeout_seconds=3,
			api_user=PULL_USER,
			allowed_doctypes=CUSTOMERS_ALLOWED,
		)
		self.rule = self.make_pull_rule(list_path=self.queue, records_path="", page_size=2)

	def publish(self, bodies: list[bytes], ids: list[str] | None = None) -> None:
		import pika

		for body, message_id in zip(bodies, ids or [None] * len(bodies), strict=True):
			self.channel.basic_publish("", self.queue, body, pika.BasicProperties(message_id=message_id))

	def waiting(self) -> int:
		return self.channel.queue_declare(self.queue, passive=True).method.message_count

	def test_a_pull_rule_reads_the_queue_and_acks_only_what_it_committed(self):
		self.assertEqual(self.rule.pagination_style, "Stream Consumer")  # the kind's default
		customers = remote_customers(3)
		self.publish([frappe.as_json(c).encode() for c in customers], ["m0", "m1", "m2"])
		with patch.object(runs.Puller, "save_position", side_effect=RuntimeError("killed before commit")):
			failed = self.run_pull(self.rule)
		self.assertEqual(failed.status, "Failed")
		self.assertEqual(our_customers(), 0)  # rolled back
		self.assertEqual(self.waiting(), 3)  # read, never acked: back in the queue

		run = self.run_pull(self.rule)
		self.assertEqual((run.status, run.created, run.failed), ("Succeeded", 3, 0), run.message)
		self.assertEqual(self.customer_of("c00001").customer_name, customers[1]["name"])
		self.assertEqual(self.waiting(), 0)

		# written, then killed before the ack: the broker hands it out again, and it changes nothing
		self.publish([frappe.as_json(customers[0]).encode()], ["m0"])
		with patch(
			"erp_connect.engine.transports.rabbitmq.RabbitMqTransport.ack", side_effect=OSError("killed")
		):
			self.run_pull(self.rule)
		self.assertEqual(self.waiting(), 1)
		renamed = {**customers[1], "name": customers[1]["name"] + " renamed"}
		self.publish([frappe.as_json(renamed).encode(), b"not json"])
		again = self.run_pull(self.rule)
		self.assertEqual((again.updated, again.unchanged, again.failed), (1, 1, 1), again.message)
		self.assertIn("not JSON", again.errors[0].error)
		self.assertEqual(our_customers(), 3)
		self.assertEqual(self.customer_of("c00001").customer_name, renamed["name"])
		self.assertEqual(self.waiting(), 0)

	def test_a_message_that_cannot_be_written_is_a_dead_letter_kept_whole_and_retried_from_desk(self):
		good, refused = remote_customers(2)
		refused = {**refused, "name": ""}  # a Customer needs a name: upsert refuses the record
		self.publish(
			[frappe.as_json(good).encode(), frappe.as_json(refused).encode(), b"not json"], ["g", "r", "x"]
		)
		run = self.run_pull(self.rule)
		self.assertEqual((run.status, run.created, run.failed), ("Completed with Errors", 1, 2), run.message)
		self.assertEqual(self.waiting(), 0)  # all acked: what failed is kept here, not in the queue
		letters = {
			d.message_id: d
			for d in frappe.get_all("Stream Dead Letter", {"pull_rule": self.rule.name}, ["*"])
		}
		self.assertEqual(set(letters), {"r", "x"})
		self.assertEqual(letters["x"].body, "not json")
		self.assertIn("not JSON", letters["x"].error)
		self.assertEqual(frappe.parse_json(letters["r"].body), refused)  # the whole message
		self.assertEqual((letters["r"].status, letters["r"].sync_run), ("Dead", run.name))

		# someone fixes the record in Desk and retries: written once, through the same path
		letter = frappe.get_doc("Stream Dead Letter", letters["r"].name)
		fixed = f"{TEST_PREFIX}pull fixed"
		letter.body = frappe.as_json({**refused, "name": fixed})
		letter.save()
		letter.retry()
		letter.reload()
		self.assertEqual(letter.status, "Replayed", letter.error)
		self.assertEqual(self.customer_of(refused["id"]).customer_name, fixed)
		letter.retry()  # again: nothing more
		self.assertEqual(our_customers(), 2)
		poison = frappe.get_doc("Stream Dead Letter", letters["x"].name)
		poison.retry()
		poison.reload()
		self.assertEqual((poison.status, poison.attempts), ("Dead", 1))

	def test_only_a_connect_manager_may_retry_a_dead_letter(self):
		self.publish([b"not json"], ["x"])
		self.run_pull(self.rule)
		name = frappe.db.get_value("Stream Dead Letter", {"pull_rule": self.rule.name})
		frappe.set_user(PULL_USER)  # an API user, not a manager
		try:
			with self.assertRaises(frappe.PermissionError):
				frappe.get_doc("Stream Dead Letter", name).retry()
		finally:
			frappe.set_user("Administrator")


class TestOtherBrokers(PushTestCase):
	"""The same drain through RabbitMQ and MQTT: a Customer save arrives once, with its event id."""

	fake_remote = False

	def test_a_customer_save_reaches_a_rabbitmq_queue(self):
		import pika

		url = "amqp://guest:guest@127.0.0.1:5672/%2F"
		root, queue = f"erptest{secrets.token_hex(4)}", f"erp_connect_test_{secrets.token_hex(4)}"
		connection = pika.BlockingConnection(pika.URLParameters(url))
		self.addCleanup(connection.close)
		channel = connection.channel()
		channel.queue_declare(queue)
		self.addCleanup(channel.queue_delete, queue)
		channel.queue_bind(queue, "amq.topic", f"{root}.#")
		self.connector = self.make_connector(
			connector_type="RabbitMQ", base_url=url, allow_private_network=1, timeout_seconds=3
		)
		self.make_rule(
			self.connector.name,
			"Customer",
			("after_insert",),
			CUSTOMER_MAP,
			target_path=f"amq.topic/{root}.{{doctype}}",
		)
		customer = make_customer()
		self.drain()
		[event] = self.events_of(customer)
		self.assertEqual(event.status, "Delivered", event.last_error)
		method, properties, body = channel.basic_get(queue, auto_ack=True)
		self.assertEqual(method.routing_key, f"{root}.customer")
		self.assertEqual((properties.message_id, properties.delivery_mode), (event.event_id, 2))
		self.assertEqual(frappe.parse_json(body.decode())["data"]["id"], customer.name)
		self.assertIsNone(channel.basic_get(queue, auto_ack=True)[0])

	def test_a_customer_save_reaches_an_mqtt_subscriber(self):
		import threading

		import paho.mqtt.client as mqtt

		root, received, subscribed = f"erptest{secrets.token_hex(4)}", [], threading.Event()
		subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
		subscriber.on_message = lambda c, u, m: received.append(m)
		subscriber.on_subscribe = lambda *args: subscribed.set()
		subscriber.connect("127.0.0.1", 1883)
		subscriber.loop_start()
		self.addCleanup(subscriber.loop_stop)
		self.addCleanup(subscriber.disconnect)
		subscriber.subscribe(f"{root}/#", qos=1)
		self.assertTrue(subscribed.wait(5))
		self.connector = self.make_connector(
			connector_type="MQTT",
			base_url="mqtt://127.0.0.1:1883",
			allow_private_network=1,
			timeout_seconds=3,
		)
		self.make_rule(
			self.connector.name,
			"Customer",
			("after_insert",),
			CUSTOMER_MAP,
			target_path=root + "/{doctype}/{event}",
		)
		customer = make_customer()
		self.drain()
		[event] = self.events_of(customer)
		self.assertEqual(event.status, "Delivered", event.last_error)
		for _ in range(100):  # bounded: up to 5 s
			if received:
				break
			time.sleep(0.05)
		[message] = received
		self.assertEqual((message.topic, message.qos), (f"{root}/customer/after_insert", 1))
		self.assertEqual(frappe.parse_json(message.payload.decode())["id"], event.event_id)


class TestStreamPreview(PushTestCase):
	fake_remote = False

	def test_the_rule_preview_shows_the_message_a_broker_gets(self):
		self.connector = self.make_connector(
			connector_type="NATS JetStream", base_url=NATS_URL, allow_private_network=1
		)
		rule = self.make_rule(
			self.connector.name, "Customer", ("on_update",), CUSTOMER_MAP, target_path="erp.{doctype}.{event}"
		)
		customer = make_customer()
		shown = rule.preview(customer.name)
		self.assertEqual(shown["method"], "PUBLISH")
		self.assertIn("subject erp.customer.on_update", shown["url"])
		body = frappe.parse_json(shown["body"])
		self.assertEqual(shown["headers"]["Nats-Msg-Id"], body["id"])
