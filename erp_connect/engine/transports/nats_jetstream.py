"""NATS JetStream: each event is one message on a subject, delivered when JetStream's PubAck says
a stream stored it.

The subject comes from the rule's target (default ``erp.{doctype}.{event}``: ``erp.customer.
after_insert``). ``Nats-Msg-Id`` is the event id, so a retry after a lost PubAck is stored once
(JetStream drops a repeated id within the stream's duplicate window and acks it as a duplicate).

nats-py is asyncio; the drain sends from several threads. Each transport runs one event loop in
a background thread with one connection to the server, and every send is a coroutine handed to
that loop (requests on one NATS connection run side by side). ``close()`` ends both.
"""

import asyncio
import concurrent.futures
import re
import threading
import time
from collections.abc import Sequence

import nats
import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, PubAck

from erp_connect.engine import http, pagination
from erp_connect.engine.transports import base, streams

SCHEMES = ("nats", "tls")
DEFAULT_SUBJECT = "erp.{doctype}.{event}"
CLOSE_SECONDS = 2.0
# a pull that dies before its commit leaves its messages to JetStream, which hands them out again
# after this long (its upserts are idempotent, so a message applied twice changes nothing)
ACK_WAIT_SECONDS = 300.0
FETCH_WAIT_SECONDS = 1.0  # how long a fetch waits for messages: none by then, the run is done


# errors that are the server's answer about one message (the connection is fine)
ANSWERS = (nats.js.errors.APIError, nats.js.errors.NoStreamResponseError, http.BlockedTargetError)


def durable_name(rule: str) -> str:
	"""The durable consumer of one pull rule (JetStream keeps its position between runs)."""
	return "erp_connect_" + re.sub(r"[^A-Za-z0-9_-]", "_", rule)


async def _quiet(_error=None) -> None:
	"""nats-py logs every connection error itself; the send's result already says what happened."""


class NatsJetStreamTransport(base.Transport):
	schemes = SCHEMES
	reads_stream = True  # pull rules read a durable consumer
	ack_wait = ACK_WAIT_SECONDS

	def __init__(self, endpoint: base.Endpoint):
		super().__init__(endpoint)
		self._lock = threading.Lock()
		self._loop: asyncio.AbstractEventLoop | None = None
		self._thread: threading.Thread | None = None
		self._nc = None  # the connection; only touched inside the loop
		self._js = self._js_of = None  # its JetStream context (the async publishes' reply subscription)
		self._connecting: asyncio.Lock | None = None
		self._subscriptions: dict = {}  # (subject, durable) -> pull subscription, on the connection

	# -- sending ---------------------------------------------------------------------------------
	def send(self, route: base.Route, events: Sequence[base.OutboundEvent]) -> list[base.SendResult]:
		"""A batch is published at once (each event its own message, the PubAcks awaited side by
		side on the one connection); each event gets the outcome of its own PubAck (the messages a
		stream stored alike share one result)."""
		results, messages = [], []
		for event in events:
			try:
				messages.append(
					(
						event.name,
						streams.message_of(
							event,
							route.target or DEFAULT_SUBJECT,
							streams.nats_token,
							self.endpoint.signing_secret,
						),
					)
				)
			except streams.BadTarget as e:
				results.append(streams.dead([event.name], str(e)))
		if not messages:
			return results
		deadline = streams.Deadline(self.endpoint.timeout)
		try:
			acks = self._run(self._publish_all([m for _, m in messages], deadline), deadline)
		except Exception as e:  # the whole batch: no connection, or no answer in time
			acks = [e] * len(messages)
		if any(isinstance(a, BaseException) and not isinstance(a, ANSWERS) for a in acks):
			self._forget_connection()  # no answer: the next send connects afresh
		# stored: one result for all the messages a stream took alike (a result each is dear)
		stored: dict[tuple[str, bool], list[str]] = {}
		for (name, message), ack in zip(messages, acks, strict=True):
			if isinstance(ack, PubAck):
				stored.setdefault((ack.stream, bool(ack.duplicate)), []).append(name)
			else:
				results.append(self._outcome([name], message, ack))
		for (stream, duplicate), names in stored.items():
			reason = f"stored in JetStream stream {stream} ({len(names)} messages)"
			if duplicate:
				reason = f"JetStream stream {stream} already had them ({len(names)} duplicate ids)"
			results.append(streams.delivered(names, reason))
		return results

	def _outcome(self, names: list[str], message: streams.Message, ack: BaseException) -> base.SendResult:
		"""One message's result from what was raised instead of its PubAck."""
		if isinstance(ack, nats.js.errors.NoStreamResponseError):
			return streams.dead(
				names,
				f"no JetStream stream takes subject {message.target}: add a stream whose subjects "
				"match it (or change the rule's target), then retry",
			)
		if isinstance(ack, nats.js.errors.APIError):
			if ack.code is None or ack.code >= 500:
				return streams.retry(names, f"JetStream error {ack.code}: {ack.description}")
			return streams.dead(names, f"JetStream refused the message ({ack.code}): {ack.description}")
		if isinstance(ack, http.BlockedTargetError):
			return streams.dead(names, f"{type(ack).__name__}: {ack}")
		if isinstance(ack, TimeoutError | asyncio.TimeoutError | concurrent.futures.TimeoutError):
			return streams.retry(names, f"no PubAck within {self.endpoint.timeout:g} s (sent again later)")
		if isinstance(ack, concurrent.futures.CancelledError | asyncio.CancelledError):
			return streams.retry(names, "the connection closed before the PubAck arrived")
		return streams.retry(names, f"{type(ack).__name__}: {ack}")

	async def _publish_all(self, messages: list[streams.Message], deadline: streams.Deadline) -> list:
		"""Publish every message without waiting, then wait for their PubAcks together (JetStream's
		async publish: one reply subscription on the connection, no request round trip each)."""
		nc = await self._connection(deadline)
		if self._js is None or self._js_of is not nc:
			self._js, self._js_of = nc.jetstream(), nc
		futures = []
		for m in messages:
			headers = {"Nats-Msg-Id": m.event_id, **m.headers}
			# no stall timeout: a batch never fills the 4,000 pending acks (a wait_for per message is dear)
			futures.append(await self._js.publish_async(m.target, m.body, headers=headers))
		await asyncio.wait(futures, timeout=deadline.left())
		acks = []
		for future in futures:
			if not future.done():
				future.cancel()
				acks.append(TimeoutError())
			else:
				acks.append(future.exception() or future.result())
		return acks

	def message_preview(self, target: str | None, event: base.OutboundEvent) -> dict:
		message = streams.message_of(
			event, target or DEFAULT_SUBJECT, streams.nats_token, self.endpoint.signing_secret
		)
		headers = {"Nats-Msg-Id": message.event_id, **message.headers}
		return {
			"method": "PUBLISH",
			"url": f"{self.endpoint.base_url} subject {message.target}",
			"headers": headers,
		}

	def ping(self) -> http.Response:
		"""Connect and ask for the JetStream account: the server answers and JetStream is on."""
		started = time.monotonic()
		deadline = streams.Deadline(self.endpoint.timeout)

		async def account():
			nc = await self._connection(deadline)
			return await nc.jetstream(timeout=deadline.left()).account_info()

		info = self._run(account(), deadline)
		return streams.answered(
			time.monotonic() - started, f"JetStream: {info.streams} streams, {info.consumers} consumers"
		)

	@classmethod
	def pull_defaults(cls, doctype: str) -> dict:
		"""A pull rule reads a durable consumer; its List Path is the subject filter."""
		return {"pagination_style": pagination.STREAM, "since_param": "", "modified_field": ""}

	# -- consuming (pull rules) --------------------------------------------------------------------
	def fetch_messages(self, subject: str, durable: str, batch: int) -> list[streams.StreamMessage]:
		"""Up to ``batch`` messages of the durable consumer ``durable`` on ``subject`` (created the
		first time, explicit acks); [] when none came within a second. Nothing is acked here: call
		``ack`` once what they carried is committed."""
		deadline = streams.Deadline(self.endpoint.timeout)

		async def fetch():
			nc = await self._connection(deadline)
			key = (subject, durable)
			subscription = self._subscriptions.get(key)
			if subscription is None:
				config = ConsumerConfig(
					durable_name=durable,
					ack_policy=AckPolicy.EXPLICIT,
					ack_wait=self.ack_wait,
					filter_subject=subject,
				)
				js = nc.jetstream(timeout=deadline.left())
				subscription = await js.pull_subscribe(subject, durable=durable, config=config)
				self._subscriptions[key] = subscription
			try:
				messages = await subscription.fetch(batch, timeout=min(FETCH_WAIT_SECONDS, deadline.left()))
			except nats.errors.TimeoutError:
				return []
			return [
				streams.StreamMessage(m.data, m.subject, (m.headers or {}).get("Nats-Msg-Id"), m)
				for m in messages
			]

		return self._run(fetch(), deadline)

	def ack(self, messages: Sequence[streams.StreamMessage]) -> None:
		"""Acknowledge messages whose records are committed; JetStream confirms each ack."""
		deadline = streams.Deadline(max(self.endpoint.timeout, 0.05 * len(messages)))

		async def ack_all():
			for message in messages:
				await message.handle.ack_sync(timeout=deadline.left())

		self._run(ack_all(), deadline)

	# -- the connection and its loop --------------------------------------------------------------
	async def _connection(self, deadline: streams.Deadline):
		if self._connecting is None:
			self._connecting = asyncio.Lock()
		async with self._connecting:
			nc = self._nc
			if nc is not None and nc.is_connected:
				return nc
			self._nc = None
			self._subscriptions = {}  # they lived on the old connection
			if nc is not None:
				await _close_quietly(nc)
			endpoint = self.endpoint
			broker = streams.broker_of(endpoint.base_url, SCHEMES, endpoint.allow_private)
			try:
				# one attempt (max_reconnect_attempts=0 would mean "try forever")
				connecting = nats.connect(
					servers=[endpoint.base_url],
					name="erp_connect",
					connect_timeout=deadline.left(),
					allow_reconnect=False,
					max_reconnect_attempts=1,
					reconnect_time_wait=0.1,
					error_cb=_quiet,
					user=broker.username,
					password=broker.password,
				)
				self._nc = await asyncio.wait_for(connecting, deadline.left())
			except nats.errors.NoServersError:
				raise ConnectionRefusedError(
					f"cannot connect to the NATS server at {broker.host}:{broker.port or 4222}"
				)
			return self._nc

	def _run(self, coroutine, deadline: streams.Deadline):
		"""Run ``coroutine`` on this transport's loop and wait for it (bounded by the deadline)."""
		future = asyncio.run_coroutine_threadsafe(coroutine, self._started_loop())
		try:
			return future.result(deadline.left() + 1)
		except concurrent.futures.TimeoutError:
			future.cancel()
			raise

	def _started_loop(self) -> asyncio.AbstractEventLoop:
		with self._lock:
			if self._loop is None:
				loop = asyncio.new_event_loop()
				thread = threading.Thread(target=loop.run_forever, name="erp_connect-nats", daemon=True)
				thread.start()
				self._loop, self._thread = loop, thread
			return self._loop

	def _forget_connection(self) -> None:
		"""After a failure, the next send connects afresh."""
		loop = self._loop
		if loop is None:
			return

		async def forget():
			nc, self._nc = self._nc, None
			if nc is not None:
				await _close_quietly(nc)

		future = asyncio.run_coroutine_threadsafe(forget(), loop)
		try:
			future.result(CLOSE_SECONDS)
		except Exception:
			future.cancel()

	def close(self) -> None:
		with self._lock:
			loop, thread = self._loop, self._thread
			self._loop = self._thread = None
		if loop is None:
			return

		async def shut():
			nc, self._nc = self._nc, None
			if nc is not None:
				await _close_quietly(nc)

		try:
			asyncio.run_coroutine_threadsafe(shut(), loop).result(CLOSE_SECONDS)
		except Exception:
			pass
		loop.call_soon_threadsafe(loop.stop)
		thread.join(CLOSE_SECONDS)
		if not thread.is_alive():
			loop.close()


async def _close_quietly(nc) -> None:
	try:
		await asyncio.wait_for(nc.close(), CLOSE_SECONDS)
	except Exception:
		pass
