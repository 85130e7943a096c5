"""The event-stream kinds against the real brokers on this machine (NATS JetStream on 4222, RabbitMQ
on 5672, Mosquitto on 1883): publish events, read them back with a consumer, and cut the
connection between a publish and its confirmation with a TCP proxy of our own.

A broker's tests are skipped only when its port is closed."""

import asyncio
import json
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from erp_connect.engine import outbound, signing, transports
from erp_connect.engine.retry import Outcome
from erp_connect.engine.transports import Endpoint, OutboundEvent, Route, streams
from erp_connect.testing.servers import js_call, port_open
from erp_connect.testing.tcp_proxy import CuttingProxy

SECRET = signing.generate_secret()
NATS_PORT, AMQP_PORT, MQTT_PORT = 4222, 5672, 1883


def needs(port: int, what: str):
	return pytest.mark.skipif(not port_open(port), reason=f"{what} is not listening on 127.0.0.1:{port}")


def event(n: int = 1, doctype: str = "Sales Order", doc_event: str = "after_insert", seq: int = 1):
	event_id = outbound.new_event_id()
	ref = outbound.EventRef(event_id, doctype, f"SO-{n}", doc_event, seq, "2026-12-01T10:00:00")
	return OutboundEvent(f"row-{n}", event_id, outbound.envelope(ref, {"id": f"SO-{n}", "n": n}))


def unique(prefix: str) -> str:
	return f"{prefix}{secrets.token_hex(4)}"


# -- the shared message format ------------------------------------------------------------------
def test_subjects_topics_and_routing_keys_come_from_the_template_made_safe():
	e = event(doctype="Sales Order", doc_event="on_update")
	m = streams.message_of(e, "erp.{doctype}.{event}", streams.nats_token, SECRET)
	assert m.target == "erp.sales_order.on_update"
	assert m.body == e.payload.encode()
	assert m.headers["erp-event-type"] == "Sales Order.on_update"
	assert m.headers["erp-event-seq"] == "1"
	assert signing.verify(SECRET, m.headers, m.body) == e.event_id
	odd = OutboundEvent(
		"x", "evt_1", json.dumps({"type": "A.B C.on_update", "doctype": "A.B C", "name": "x/y"})
	)
	assert streams.message_of(odd, "erp.{doctype}.{name}", streams.nats_token, None).target == "erp.a_b_c.x/y"
	assert streams.message_of(odd, "erp/{doctype}/{name}", streams.mqtt_token, None).target == "erp/a.b_c/x_y"
	with pytest.raises(streams.BadTarget, match="may use"):
		streams.message_of(odd, "erp.{customer}", streams.nats_token, None)


def test_broker_urls_are_validated_by_their_kind_and_private_brokers_need_the_switch():
	nats_kind = transports.kind("NATS JetStream")
	assert nats_kind.url_problem("nats://127.0.0.1:4222") == ""
	assert "nats://" in nats_kind.url_problem("http://127.0.0.1:4222")
	assert "port" in nats_kind.url_problem("nats://127.0.0.1:99999")
	assert "http" in transports.kind("Webhook").url_problem("nats://127.0.0.1:4222")
	transport = nats_kind(Endpoint("nats://127.0.0.1:4222", 2, allow_private=False))
	try:
		result = transport.send(Route(""), [event()])
	finally:
		transport.close()
	assert result[0].verdict.outcome is Outcome.DEAD
	assert "allow private network targets" in result[0].verdict.reason


# -- NATS JetStream ---------------------------------------------------------------------------
@pytest.fixture
def stream():
	"""A JetStream stream of the test's own subjects, deleted afterwards."""
	from nats.js.api import StreamConfig

	name, root = unique("ERPTEST_"), unique("erptest")
	config = StreamConfig(name=name, subjects=[f"{root}.>"], duplicate_window=120.0)
	js_call(lambda js: js.add_stream(config))
	yield name, root
	js_call(lambda js: js.delete_stream(name))


def stream_messages(name: str) -> int:
	async def count(js):
		return (await js.stream_info(name)).state.messages

	return js_call(count)


def nats_transport(port: int = NATS_PORT, timeout: float = 3, secret: str | None = SECRET):
	return transports.kind("NATS JetStream")(Endpoint(f"nats://127.0.0.1:{port}", timeout, True, {}, secret))


@needs(NATS_PORT, "NATS")
def test_nats_publish_is_delivered_on_pubAck_with_headers_and_a_repeat_is_stored_once(stream):
	name, root = stream
	transport = nats_transport()
	route = Route(root + ".{doctype}.{event}")
	e = event(seq=3)
	try:
		first = transport.send(route, [e])
		again = transport.send(route, [e])
	finally:
		transport.close()
	assert first[0].verdict.outcome is Outcome.DELIVERED, first
	assert f"stream {name}" in first[0].verdict.reason
	assert again[0].verdict.outcome is Outcome.DELIVERED and "duplicate" in again[0].verdict.reason
	assert stream_messages(name) == 1

	stored = js_call(lambda js: js.get_msg(name, 1))
	assert stored.subject == f"{root}.sales_order.after_insert"
	assert stored.data == e.payload.encode()
	assert stored.headers["Nats-Msg-Id"] == e.event_id
	assert stored.headers["erp-event-type"] == "Sales Order.after_insert"
	assert stored.headers["erp-event-seq"] == "3"
	assert signing.verify(SECRET, stored.headers, stored.data) == e.event_id


@needs(NATS_PORT, "NATS")
def test_nats_a_batch_is_published_at_once_and_each_event_gets_its_own_outcome():
	from nats.js.api import StreamConfig

	name, root = unique("ERPTEST_"), unique("erptest")
	config = StreamConfig(name=name, subjects=[f"{root}.sales_order.>"], duplicate_window=120.0)
	js_call(lambda js: js.add_stream(config))
	transport = nats_transport()
	orders = [event(n) for n in range(60)]
	stray = event(99, doctype="Customer")  # root.customer.* is outside the stream's root.sales_order.>
	try:
		results = transport.send(Route(root + ".{doctype}.{event}"), [*orders[:30], stray, *orders[30:]])
		again = transport.send(Route(root + ".{doctype}.{event}"), orders[:10])  # a retried part
	finally:
		transport.close()
	by_name = {n: r.verdict for r in results for n in r.names}
	assert len(by_name) == 61
	assert by_name[stray.name].outcome is Outcome.DEAD and "no JetStream stream" in by_name[stray.name].reason
	assert all(by_name[e.name].outcome is Outcome.DELIVERED for e in orders)
	assert all("duplicate" in r.verdict.reason for r in again)
	assert stream_messages(name) == 60
	js_call(lambda js: js.delete_stream(name))


@needs(NATS_PORT, "NATS")
def test_nats_subject_without_a_stream_is_dead_with_the_reason():
	transport = nats_transport()
	try:
		(result,) = transport.send(Route(unique("nostream") + ".{doctype}"), [event()])
	finally:
		transport.close()
	assert result.verdict.outcome is Outcome.DEAD
	assert "no JetStream stream takes subject" in result.verdict.reason


def test_nats_server_not_listening_is_retry():
	with socket.create_server(("127.0.0.1", 0)) as s:
		closed_port = s.getsockname()[1]
	transport = nats_transport(closed_port, timeout=2)
	try:
		(result,) = transport.send(Route("erp.{doctype}"), [event()])
	finally:
		transport.close()
	assert result.verdict.outcome is Outcome.RETRY
	assert "cannot connect" in result.verdict.reason


@needs(NATS_PORT, "NATS")
def test_nats_many_threads_share_one_transport(stream):
	name, root = stream
	transport = nats_transport()
	events = [event(n) for n in range(40)]
	try:
		with ThreadPoolExecutor(8) as pool:
			results = list(pool.map(lambda e: transport.send(Route(root + ".{name}"), [e])[0], events))
		assert transport.ping().status == 200
		loop_thread = transport._thread
	finally:
		transport.close()
	assert [r.verdict.outcome for r in results] == [Outcome.DELIVERED] * 40
	assert stream_messages(name) == 40
	assert not loop_thread.is_alive()  # close() ends the connection and its loop


@needs(NATS_PORT, "NATS")
def test_nats_connection_cut_before_the_pubAck_is_retry_and_the_resend_is_stored_once(stream):
	name, root = stream
	route = Route(root + ".{doctype}.{event}")
	e = event()
	with CuttingProxy(NATS_PORT) as proxy:
		transport = nats_transport(proxy.port, timeout=3)
		try:
			proxy.cut_after(e.event_id.encode())
			(lost,) = transport.send(route, [e])
			assert proxy.cuts == 1
			assert lost.verdict.outcome is Outcome.RETRY, lost
			assert stream_messages(name) == 1  # JetStream stored it; only the ack was lost
			(resent,) = transport.send(route, [e])  # the drain's retry: the same event id
		finally:
			transport.close()
	assert resent.verdict.outcome is Outcome.DELIVERED, resent
	assert "duplicate" in resent.verdict.reason
	assert stream_messages(name) == 1


# -- RabbitMQ ---------------------------------------------------------------------------------
AMQP_URL = "amqp://guest:guest@127.0.0.1:{port}/%2F"


def rabbit_transport(port: int = AMQP_PORT, timeout: float = 3):
	return transports.kind("RabbitMQ")(Endpoint(AMQP_URL.format(port=port), timeout, True, {}, SECRET))


@pytest.fixture
def rabbit_queue():
	"""A queue of the test's own, bound to amq.topic for ``<root>.#``, deleted afterwards."""
	import pika

	connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL.format(port=AMQP_PORT)))
	channel = connection.channel()
	root, queue = unique("erptest"), unique("erp_connect_test_")
	channel.queue_declare(queue, auto_delete=False)
	channel.queue_bind(queue, "amq.topic", f"{root}.#")
	yield channel, queue, root
	channel.queue_delete(queue)
	connection.close()


@needs(AMQP_PORT, "RabbitMQ")
def test_rabbitmq_publish_is_confirmed_persistent_and_carries_the_event_id(rabbit_queue):
	channel, queue, root = rabbit_queue
	transport = rabbit_transport()
	e = event(seq=2)
	try:
		(result,) = transport.send(Route("amq.topic/" + root + ".{doctype}.{event}"), [e])
	finally:
		transport.close()
	assert result.verdict.outcome is Outcome.DELIVERED, result
	method, properties, body = channel.basic_get(queue, auto_ack=True)
	assert method.routing_key == f"{root}.sales_order.after_insert"
	assert body == e.payload.encode()
	assert (properties.delivery_mode, properties.message_id) == (2, e.event_id)
	assert properties.content_type == "application/json"
	assert properties.headers["erp-event-seq"] == "2"
	assert signing.verify(SECRET, properties.headers, body) == e.event_id
	assert channel.basic_get(queue, auto_ack=True)[0] is None  # once


@needs(AMQP_PORT, "RabbitMQ")
def test_rabbitmq_unroutable_is_retry_and_a_missing_exchange_is_dead():
	transport = rabbit_transport()
	try:
		(unroutable,) = transport.send(Route("amq.topic/" + unique("nobody") + ".{doctype}"), [event()])
		(missing,) = transport.send(Route(unique("no_such_exchange_") + "/x"), [event()])
		(after,) = transport.send(Route("amq.topic/" + unique("nobody")), [event()])  # a fresh channel
	finally:
		transport.close()
	assert unroutable.verdict.outcome is Outcome.RETRY and "no queue is bound" in unroutable.verdict.reason
	assert missing.verdict.outcome is Outcome.DEAD and "NOT_FOUND" in missing.verdict.reason
	assert after.verdict.outcome is Outcome.RETRY


def test_rabbitmq_not_listening_is_retry():
	with socket.create_server(("127.0.0.1", 0)) as s:
		closed = s.getsockname()[1]
	transport = rabbit_transport(closed, timeout=2)
	(result,) = transport.send(Route(""), [event()])
	transport.close()
	assert result.verdict.outcome is Outcome.RETRY and "cannot connect" in result.verdict.reason


@needs(AMQP_PORT, "RabbitMQ")
def test_rabbitmq_connection_cut_before_the_confirm_is_retry(rabbit_queue):
	channel, queue, root = rabbit_queue
	route = Route("amq.topic/" + root + ".{doctype}")
	e = event()
	with CuttingProxy(AMQP_PORT) as proxy:
		transport = rabbit_transport(proxy.port)
		try:
			proxy.cut_after(e.payload.encode()[-24:])  # the body frame: the whole message has passed
			(lost,) = transport.send(route, [e])
			assert proxy.cuts == 1
			(resent,) = transport.send(route, [e])  # reconnects, the same message id
		finally:
			transport.close()
	assert lost.verdict.outcome is Outcome.RETRY, lost
	assert resent.verdict.outcome is Outcome.DELIVERED, resent
	ids = []
	for _ in range(5):  # bounded: at most what was published
		method, properties, _body = channel.basic_get(queue, auto_ack=True)
		if method is None:
			break
		ids.append(properties.message_id)
	# RabbitMQ does not dedupe: the consumer sees the event id twice and applies it once
	assert ids == [e.event_id, e.event_id]


@needs(AMQP_PORT, "RabbitMQ")
def test_rabbitmq_queue_hands_out_messages_until_they_are_acked(rabbit_queue):
	import pika

	channel, queue, _root = rabbit_queue
	for i in range(5):
		properties = pika.BasicProperties(message_id=f"m{i}")
		channel.basic_publish("", queue, json.dumps({"id": f"o{i}"}).encode(), properties)
	reader = rabbit_transport()
	try:
		first = reader.fetch_messages(queue, "unused", 3)
		assert [json.loads(m.data)["id"] for m in first] == ["o0", "o1", "o2"]
		assert [m.message_id for m in first] == ["m0", "m1", "m2"]
		reader.ack(first[:2])  # o2 "was not committed": it stays unacked
		rest = reader.fetch_messages(queue, "unused", 10)
		assert [json.loads(m.data)["id"] for m in rest] == ["o3", "o4"]
		reader.ack(rest)
		assert reader.fetch_messages(queue, "unused", 10) == []
	finally:
		reader.close()  # the unacked o2 goes back to the queue
	again = rabbit_transport()
	try:
		(o2,) = again.fetch_messages(queue, "unused", 10)
		assert json.loads(o2.data)["id"] == "o2"
		again.ack([o2])
		assert again.fetch_messages(queue, "unused", 10) == []
	finally:
		again.close()
	assert channel.queue_declare(queue, passive=True).method.message_count == 0


@needs(AMQP_PORT, "RabbitMQ")
def test_rabbitmq_missing_queue_is_a_clear_error():
	reader = rabbit_transport()
	try:
		with pytest.raises(ConnectionError, match="no queue named"):
			reader.fetch_messages(unique("no_such_queue_"), "unused", 10)
	finally:
		reader.close()


# -- MQTT -------------------------------------------------------------------------------------
def mqtt_transport(port: int = MQTT_PORT, timeout: float = 3):
	return transports.kind("MQTT")(Endpoint(f"mqtt://127.0.0.1:{port}", timeout, True, {}, SECRET))


@pytest.fixture
def mqtt_subscriber():
	"""A QoS 1 subscriber of ``<root>/#`` (MQTT 5) and what it received."""
	import paho.mqtt.client as mqtt

	root, received, subscribed = unique("erptest"), [], threading.Event()
	client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
	client.on_message = lambda c, u, m: received.append(m)
	client.on_subscribe = lambda *args: subscribed.set()
	client.connect("127.0.0.1", MQTT_PORT)
	client.loop_start()
	client.subscribe(f"{root}/#", qos=1)
	assert subscribed.wait(5)
	yield root, received
	client.disconnect()
	client.loop_stop()


def wait_for(condition, seconds: float = 5) -> bool:
	ends = time.monotonic() + seconds
	while time.monotonic() < ends:
		if condition():
			return True
		time.sleep(0.02)
	return condition()


@needs(MQTT_PORT, "Mosquitto")
def test_mqtt_publish_is_delivered_on_puback_at_qos_1_not_retained(mqtt_subscriber):
	root, received = mqtt_subscriber
	transport = mqtt_transport()
	e = event(seq=4)
	try:
		(result,) = transport.send(Route(root + "/{doctype}/{event}"), [e])
	finally:
		transport.close()
	assert result.verdict.outcome is Outcome.DELIVERED, result
	assert wait_for(lambda: received)
	(message,) = received
	assert message.topic == f"{root}/sales_order/after_insert"
	assert (message.qos, message.retain) == (1, False)
	assert json.loads(message.payload)["id"] == e.event_id and json.loads(message.payload)["seq"] == 4
	properties = dict(message.properties.UserProperty)
	assert properties["erp-event-seq"] == "4"
	assert signing.verify(SECRET, properties, message.payload) == e.event_id


def test_mqtt_not_listening_is_retry():
	with socket.create_server(("127.0.0.1", 0)) as s:
		closed = s.getsockname()[1]
	transport = mqtt_transport(closed, timeout=2)
	(result,) = transport.send(Route(""), [event()])
	transport.close()
	assert result.verdict.outcome is Outcome.RETRY


@needs(MQTT_PORT, "Mosquitto")
def test_mqtt_connection_cut_before_the_puback_is_retry(mqtt_subscriber):
	root, received = mqtt_subscriber
	e = event()
	with CuttingProxy(MQTT_PORT) as proxy:
		transport = mqtt_transport(proxy.port, timeout=2)
		try:
			proxy.cut_after(e.event_id.encode())
			(lost,) = transport.send(Route(root + "/{doctype}"), [e])
			assert proxy.cuts == 1
			(resent,) = transport.send(Route(root + "/{doctype}"), [e])
		finally:
			transport.close()
	assert lost.verdict.outcome is Outcome.RETRY, lost
	assert resent.verdict.outcome is Outcome.DELIVERED, resent
	assert wait_for(lambda: len(received) >= 2)
	assert {json.loads(m.payload)["id"] for m in received} == {e.event_id}  # one id: dedupe by it


# -- consuming a JetStream durable consumer (pull rules) ----------------------------------------
def publish_raw(subject: str, bodies: list[bytes]) -> None:
	async def publish(js):
		for body in bodies:
			await js.publish(subject, body)

	js_call(publish)


def consumer_state(name: str, durable: str):
	return js_call(lambda js: js.consumer_info(name, durable))


@needs(NATS_PORT, "NATS")
def test_nats_durable_consumer_hands_out_messages_until_they_are_acked(stream):
	from erp_connect.engine.transports.nats_jetstream import durable_name

	name, root = stream
	publish_raw(f"{root}.orders.new", [json.dumps({"id": f"o{i}"}).encode() for i in range(5)])
	durable = durable_name("PULL-RULE 0001")
	reader = nats_transport()
	# short, so the test sees an unacked message handed out again; long enough that a loaded
	# machine does not see it come back before the second fetch
	reader.ack_wait = 6.0
	try:
		first = reader.fetch_messages(f"{root}.orders.>", durable, 3)
		handed_out = time.monotonic()
		assert [json.loads(m.data)["id"] for m in first] == ["o0", "o1", "o2"]
		reader.ack(first[:2])  # o2 "was not committed": it stays unacked
		rest = reader.fetch_messages(f"{root}.orders.>", durable, 10)
		assert [json.loads(m.data)["id"] for m in rest] == ["o3", "o4"]
		reader.ack(rest)
		time.sleep(max(0.0, handed_out + 6.5 - time.monotonic()))  # past ack_wait: o2 comes back
		again = reader.fetch_messages(f"{root}.orders.>", durable, 10)
		assert [json.loads(m.data)["id"] for m in again] == ["o2"]
		reader.ack(again)
		assert reader.fetch_messages(f"{root}.orders.>", durable, 10) == []
	finally:
		reader.close()
	info = consumer_state(name, durable)
	assert (info.num_pending, info.num_ack_pending) == (0, 0)


def test_a_message_becomes_records_or_a_clear_problem():
	envelope = json.dumps({"id": "evt_1", "data": {"id": "C1"}}).encode()
	assert streams.records_of_message(envelope, "data") == [{"id": "C1"}]
	assert streams.records_of_message(b'[{"id": 1}, {"id": 2}]', "") == [{"id": 1}, {"id": 2}]
	with pytest.raises(ValueError, match="not JSON"):
		streams.records_of_message(b"\xff", "")
	with pytest.raises(ValueError, match="expected an object"):
		streams.records_of_message(b'"text"', "")


# -- an ack lost on a connection that stays open: the timeout -----------------------------------
@needs(NATS_PORT, "NATS")
def test_nats_pubAck_lost_on_an_open_connection_is_retry_after_the_timeout(stream):
	name, root = stream
	e = event()
	with CuttingProxy(NATS_PORT) as proxy:
		transport = nats_transport(proxy.port, timeout=1)
		try:
			proxy.cut_after(e.event_id.encode(), drop=False)
			(lost,) = transport.send(Route(root + ".{doctype}"), [e])
		finally:
			transport.close()
	assert lost.verdict.outcome is Outcome.RETRY and "no PubAck within 1 s" in lost.verdict.reason
	resender = nats_transport()
	try:
		(resent,) = resender.send(Route(root + ".{doctype}"), [e])
	finally:
		resender.close()
	assert "duplicate" in resent.verdict.reason
	assert stream_messages(name) == 1


@needs(AMQP_PORT, "RabbitMQ")
def test_rabbitmq_confirm_lost_on_an_open_connection_is_retry_after_the_timeout(rabbit_queue):

	_channel, _queue, root = rabbit_queue
	e = event()
	with CuttingProxy(AMQP_PORT) as proxy:
		transport = rabbit_transport(proxy.port, timeout=1)
		try:
			proxy.cut_after(e.payload.encode()[-24:], drop=False)
			started = time.monotonic()
			(lost,) = transport.send(Route("amq.topic/" + root + ".{doctype}"), [e])
			waited = time.monotonic() - started
		finally:
			transport.close()
	assert lost.verdict.outcome is Outcome.RETRY and "no publisher confirm within 1 s" in lost.verdict.reason
	assert waited < 3


@needs(MQTT_PORT, "Mosquitto")
def test_mqtt_puback_lost_on_an_open_connection_is_retry_after_the_timeout(mqtt_subscriber):
	root, _received = mqtt_subscriber
	e = event()
	with CuttingProxy(MQTT_PORT) as proxy:
		transport = mqtt_transport(proxy.port, timeout=1)
		try:
			proxy.cut_after(e.event_id.encode(), drop=False)
			(lost,) = transport.send(Route(root + "/{doctype}"), [e])
		finally:
			transport.close()
	assert lost.verdict.outcome is Outcome.RETRY and "no PUBACK within 1 s" in lost.verdict.reason


def test_the_preview_of_a_broker_message_is_what_is_published():
	e = event(seq=5)
	for kind, target, where, extra in (
		("NATS JetStream", "", "subject erp.sales_order.after_insert", "Nats-Msg-Id"),
		("RabbitMQ", "", "exchange amq.topic routing key erp.sales_order.after_insert", "message_id"),
		("MQTT", "", "topic erp/sales_order/after_insert", "erp-event-seq"),
	):
		shown = transports.kind(kind)(Endpoint("x://h", 2, True, {}, SECRET)).message_preview(target, e)
		assert shown["method"] == "PUBLISH" and where in shown["url"], shown
		assert shown["headers"][extra] in (e.event_id, "5")
		assert signing.verify(SECRET, shown["headers"], e.payload) == e.event_id
	assert transports.kind("Webhook")(Endpoint("http://h")).message_preview("/x", e) is None
