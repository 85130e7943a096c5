"""Event-stream delivery benchmark: the same backlog drained by one RQ worker to NATS JetStream (100
events per send), to RabbitMQ with publisher confirms (one message per event) and, in the same run,
to the loopback webhook receiver (100 per request, the webhook path's fastest), all on this machine.

	bench --site test.localhost execute erp_connect.benchmarks.streams.run
	bench --site test.localhost execute erp_connect.benchmarks.streams.run --kwargs "{'events': 5000}"

The stream and the queue are the benchmark's own and are deleted at the end, with the connectors,
rules and events it made. "Duplicates" counts messages the broker holds beyond one per event.
"""

import secrets

from erp_connect.benchmarks.push import PREFIX, bench_drain, cleanup, make_connector, start_receiver
from erp_connect.testing.servers import NATS_URL, js_call

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
WEBHOOK, NATS, RABBIT = PREFIX + "webhook path", PREFIX + "jetstream", PREFIX + "rabbitmq"
TARGET_RATE = 5000  # events/s batched to JetStream, the target


def run(events: int = 30000, rabbit_events: int = 5000, batch_size: int = 100) -> None:
	root = "erpbench" + secrets.token_hex(3)
	stream, queue = f"ERP_BENCH_{root}", f"erp_connect_bench_{root}"
	receiver, url = start_receiver()
	connectors = (WEBHOOK, NATS, RABBIT)
	results = {}
	try:
		cleanup(connectors)
		add_stream(stream, root)
		add_queue(queue, root)
		make_connector(url, WEBHOOK)
		make_connector(NATS_URL, NATS, connector_type="NATS JetStream", timeout_seconds=10)
		make_connector(AMQP_URL, RABBIT, connector_type="RabbitMQ", timeout_seconds=10)
		results["webhook"] = bench_drain(WEBHOOK, events, batch_size)
		results["jetstream"] = bench_drain(NATS, events, batch_size, target=root + ".{doctype}.{event}")
		results["jetstream"]["stored"] = stream_messages(stream)
		results["rabbitmq"] = bench_drain(RABBIT, rabbit_events, 1, target="amq.topic/" + root + ".{doctype}")
		results["rabbitmq"]["stored"] = queue_messages(queue)
		report(results, batch_size)
	finally:
		cleanup(connectors)
		delete_stream(stream)
		delete_queue(queue)
		receiver.kill()


def report(r: dict, batch_size: int) -> None:
	base = r["webhook"]["rate"]
	print()
	print("event-stream delivery, one RQ worker, the same seeded backlog (events/s)")
	print(f"  webhook path, {batch_size}/request   {base:9.1f}   1.00x   ({r['webhook']['events']} events)")
	for key, label in (
		("jetstream", f"NATS JetStream, {batch_size}/send"),
		("rabbitmq", "RabbitMQ, confirms, 1/msg"),
	):
		x = r[key]
		duplicates = x["stored"] - x["delivered"]
		print(
			f"  {label:<27} {x['rate']:9.1f} {x['rate'] / base:6.2f}x   ({x['events']} events, "
			f"{x['delivered']} delivered, {x['stored']} stored, {duplicates} duplicates)"
		)
	j = r["jetstream"]["rate"]
	print(f"  JetStream vs the target of {TARGET_RATE}/s: {j / TARGET_RATE:.2f}x")


# -- the brokers' side (the benchmark's own stream and queue) -------------------------------------
def add_stream(name: str, root: str) -> None:
	from nats.js.api import StreamConfig

	js_call(lambda js: js.add_stream(StreamConfig(name=name, subjects=[f"{root}.>"], duplicate_window=600.0)))


def stream_messages(name: str) -> int:
	async def count(js):
		return (await js.stream_info(name)).state.messages

	return js_call(count)


def delete_stream(name: str) -> None:
	try:
		js_call(lambda js: js.delete_stream(name))
	except Exception:
		pass  # never made


def _amqp(fn):
	import pika

	connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
	try:
		return fn(connection.channel())
	finally:
		connection.close()


def add_queue(queue: str, root: str) -> None:
	def declare(channel):
		channel.queue_declare(queue)
		channel.queue_bind(queue, "amq.topic", f"{root}.#")

	_amqp(declare)


def queue_messages(queue: str) -> int:
	return _amqp(lambda channel: channel.queue_declare(queue, passive=True).method.message_count)


def delete_queue(queue: str) -> None:
	try:
		_amqp(lambda channel: channel.queue_delete(queue))
	except Exception:
		pass
