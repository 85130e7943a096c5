"""RabbitMQ (AMQP 0-9-1): each event is one persistent message on an exchange, delivered when the
broker's publisher confirm arrives.

The rule's target is ``exchange/routing key`` (default ``amq.topic/erp.{doctype}.{event}``; no
slash: the default exchange, the routing key naming a queue). Messages are persistent
(delivery_mode 2), ``mandatory`` (a message no queue takes is returned, not dropped) and carry the
event id as ``message_id`` for consumers to dedupe by (RabbitMQ itself does not).

A pull rule reads a queue (its List Path): messages are taken with ``basic_get`` and manual acks,
and acknowledged only after what they carried is committed; unacked ones go back to the queue when
the connection closes.

pika's BlockingConnection is not thread-safe: every sender thread gets a connection and a
confirming channel of its own; ``close()`` closes them all.
"""

import threading
import time
from collections.abc import Sequence

import pika
import pika.exceptions

from erp_connect.engine import http, pagination
from erp_connect.engine.transports import base, streams

SCHEMES = ("amqp", "amqps")
DEFAULT_TARGET = "amq.topic/erp.{doctype}.{event}"


def exchange_and_key(target: str) -> tuple[str, str]:
	exchange, slash, key = target.partition("/")
	return (exchange, key) if slash else ("", target)


class RabbitMqTransport(base.Transport):
	schemes = SCHEMES
	one_document_per_request = True  # one message per event
	reads_stream = True  # pull rules read a queue

	def __init__(self, endpoint: base.Endpoint):
		super().__init__(endpoint)
		self._lock = threading.Lock()
		self._open: list = []  # every thread's connection, for close()

	def send(self, route: base.Route, events: Sequence[base.OutboundEvent]) -> list[base.SendResult]:
		(event,) = events
		names = [event.name]
		exchange, key_template = exchange_and_key(route.target or DEFAULT_TARGET)
		try:
			message = streams.message_of(
				event, key_template, streams.amqp_token, self.endpoint.signing_secret
			)
		except streams.BadTarget as e:
			return [streams.dead(names, str(e))]
		properties = pika.BasicProperties(
			content_type="application/json",
			delivery_mode=pika.DeliveryMode.Persistent,
			message_id=message.event_id,
			type=message.type,
			timestamp=int(time.time()),
			headers={k: v for k, v in message.headers.items() if k != "Content-Type"},
		)
		where = f"exchange {exchange or '(default)'!r} with routing key {message.target!r}"
		try:
			channel = self._channel()
			timer = self._confirm_deadline(channel)
			try:
				channel.basic_publish(exchange, message.target, message.body, properties, mandatory=True)
			finally:
				self._cancel(channel, timer)
		except pika.exceptions.UnroutableError:
			return [streams.retry(names, f"no queue is bound to {where} (returned unroutable)")]
		except pika.exceptions.NackError:
			return [streams.retry(names, f"RabbitMQ did not confirm the message on {where} (nack)")]
		except pika.exceptions.ChannelClosedByBroker as e:
			self._forget()
			if e.reply_code == 404:
				return [streams.dead(names, f"RabbitMQ: {e.reply_text} (declare the exchange, then retry)")]
			return [streams.dead(names, f"RabbitMQ closed the channel: {e.reply_code} {e.reply_text}")]
		except (pika.exceptions.ProbableAuthenticationError, pika.exceptions.ProbableAccessDeniedError) as e:
			self._forget()
			return [streams.dead(names, f"RabbitMQ refused the credentials: {e}")]
		except http.BlockedTargetError as e:
			return [streams.dead(names, f"{type(e).__name__}: {e}")]
		except (pika.exceptions.AMQPError, OSError) as e:
			self._forget()
			reason = str(e) or "the connection was lost"
			return [streams.retry(names, f"{type(e).__name__}: {reason} (no confirm; sent again later)")]
		return [streams.delivered(names, f"confirmed by RabbitMQ on {where}")]

	def message_preview(self, target: str | None, event: base.OutboundEvent) -> dict:
		exchange, key_template = exchange_and_key(target or DEFAULT_TARGET)
		message = streams.message_of(event, key_template, streams.amqp_token, self.endpoint.signing_secret)
		properties = {
			"content_type": "application/json",
			"delivery_mode": "2",
			"message_id": message.event_id,
			"type": message.type,
		}
		where = f"{self.endpoint.base_url} exchange {exchange or '(default)'} routing key {message.target}"
		headers = {k: v for k, v in message.headers.items() if k != "Content-Type"}
		return {"method": "PUBLISH", "url": where, "headers": {**properties, **headers}}

	def ping(self) -> http.Response:
		started = time.monotonic()
		connection = self._channel().connection
		return streams.answered(time.monotonic() - started, f"RabbitMQ open: {connection.is_open}")

	@classmethod
	def pull_defaults(cls, doctype: str) -> dict:
		"""A pull rule reads a queue; its List Path is the queue's name."""
		return {"pagination_style": pagination.STREAM, "since_param": "", "modified_field": ""}

	# -- consuming (pull rules) --------------------------------------------------------------------
	def fetch_messages(self, queue: str, durable: str, batch: int) -> list[streams.StreamMessage]:
		"""Up to ``batch`` messages of ``queue``, not acknowledged (``durable`` is for kinds whose
		consumers have names; a RabbitMQ queue is its own). ConnectionError when there is no such
		queue."""
		channel = self._consuming_channel()
		try:
			channel.queue_declare(queue, passive=True)
		except pika.exceptions.ChannelClosedByBroker as e:
			self._local.consuming = None
			if e.reply_code == 404:
				raise ConnectionError(f"RabbitMQ has no queue named {queue!r} (declare and bind it)")
			raise
		messages = []
		for _ in range(max(batch, 1)):
			method, properties, body = channel.basic_get(queue, auto_ack=False)
			if method is None:
				break
			messages.append(streams.StreamMessage(body, method.routing_key, properties.message_id, method))
		return messages

	def ack(self, messages: Sequence[streams.StreamMessage]) -> None:
		"""Acknowledge messages whose records are committed (on the channel that read them)."""
		channel = self._consuming_channel(reuse_only=True)
		for message in messages:
			channel.basic_ack(message.handle.delivery_tag)

	def _consuming_channel(self, reuse_only: bool = False):
		"""A channel without publisher confirms on this thread's connection; delivery tags
		belong to it, so acks must use the channel that read."""
		channel = getattr(self._local, "consuming", None)
		if channel is not None and channel.is_open:
			return channel
		if reuse_only:
			raise ConnectionError("the channel that read the messages is closed; they are handed out again")
		channel = self._channel().connection.channel()
		self._local.consuming = channel
		return channel

	# -- connections, one per thread --------------------------------------------------------------
	def _channel(self):
		channel = getattr(self._local, "channel", None)
		if channel is not None and channel.is_open and channel.connection.is_open:
			return channel
		self._forget()
		endpoint = self.endpoint
		broker = streams.broker_of(endpoint.base_url, SCHEMES, endpoint.allow_private)  # the SSRF guard
		parameters = pika.URLParameters(endpoint.base_url)
		parameters.socket_timeout = endpoint.timeout
		parameters.stack_timeout = endpoint.timeout
		parameters.blocked_connection_timeout = endpoint.timeout
		parameters.connection_attempts = 1
		parameters.client_properties = {"connection_name": "erp_connect"}
		try:
			connection = pika.BlockingConnection(parameters)
		except (pika.exceptions.ProbableAuthenticationError, pika.exceptions.ProbableAccessDeniedError):
			raise
		except pika.exceptions.AMQPConnectionError as e:
			where = f"{broker.host}:{broker.port or parameters.port}"
			raise ConnectionError(f"cannot connect to RabbitMQ at {where} ({type(e).__name__} {e})")
		with self._lock:
			self._open.append(connection)
		channel = connection.channel()
		channel.confirm_delivery()
		self._local.channel = channel
		return channel

	def _confirm_deadline(self, channel):
		"""pika waits for a publisher confirm without a limit: end the connection when none
		came within the timeout (the send is then a retry)."""
		impl = getattr(channel.connection, "_impl", None)
		if impl is None or not hasattr(impl, "_adapter_call_later"):
			return None

		def give_up():
			impl._terminate_stream(
				pika.exceptions.StreamLostError(f"no publisher confirm within {self.endpoint.timeout:g} s")
			)

		return impl._adapter_call_later(self.endpoint.timeout, give_up)

	def _cancel(self, channel, timer) -> None:
		if timer is not None:
			try:
				channel.connection._impl._adapter_remove_timeout(timer)
			except Exception:
				pass

	def _forget(self) -> None:
		channel = getattr(self._local, "channel", None)
		self._local.channel = self._local.consuming = None
		if channel is not None:
			_close_quietly(channel.connection)
			with self._lock:
				if channel.connection in self._open:
					self._open.remove(channel.connection)

	def close(self) -> None:
		"""Called when no send is running (the drain's senders have finished)."""
		with self._lock:
			connections, self._open = self._open, []
		for connection in connections:
			_close_quietly(connection)


def _close_quietly(connection) -> None:
	try:
		if connection.is_open:
			connection.close()
	except Exception:
		pass
