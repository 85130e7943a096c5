"""MQTT (v5): each event is one QoS 1 message on a topic, delivered when the broker's PUBACK
arrives.

The topic comes from the rule's target (default ``erp/{doctype}/{event}``); messages are never
retained. The body is the event envelope (its id and seq are inside); MQTT 5 user properties
carry the id, type, seq and the Standard Webhooks timestamp and signature, and the content type
is ``application/json``.

One paho client per transport, its network loop in paho's own thread; paho's publish is
thread-safe. A send that gets no PUBACK ends the client, so nothing is sent behind the drain's
back; the drain sends it again later with the same id.
"""

import threading
import time
from collections.abc import Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from erp_connect.engine import http
from erp_connect.engine.transports import base, streams

SCHEMES = ("mqtt", "mqtts")
DEFAULT_TOPIC = "erp/{doctype}/{event}"
KEEPALIVE_SECONDS = 60


class MqttTransport(base.Transport):
	schemes = SCHEMES
	one_document_per_request = True  # one message per event

	def __init__(self, endpoint: base.Endpoint):
		super().__init__(endpoint)
		self._lock = threading.Lock()
		self._client: mqtt.Client | None = None
		self._acks: dict[int, object] = {}  # message id -> the PUBACK's reason code

	def send(self, route: base.Route, events: Sequence[base.OutboundEvent]) -> list[base.SendResult]:
		(event,) = events
		names = [event.name]
		try:
			message = streams.message_of(
				event, route.target or DEFAULT_TOPIC, streams.mqtt_token, self.endpoint.signing_secret
			)
		except streams.BadTarget as e:
			return [streams.dead(names, str(e))]
		properties = Properties(PacketTypes.PUBLISH)
		properties.ContentType = "application/json"
		properties.UserProperty = [(k, v) for k, v in message.headers.items() if k != "Content-Type"]
		deadline = streams.Deadline(self.endpoint.timeout)
		try:
			client = self._connected(deadline)
			info = client.publish(message.target, message.body, qos=1, retain=False, properties=properties)
			if info.rc != mqtt.MQTT_ERR_SUCCESS:
				raise ConnectionError(mqtt.error_string(info.rc))
			info.wait_for_publish(deadline.left())
		except http.BlockedTargetError as e:
			return [streams.dead(names, f"{type(e).__name__}: {e}")]
		except (OSError, RuntimeError, ValueError) as e:
			self.close()
			return [streams.retry(names, f"{type(e).__name__}: {e}")]
		if not info.is_published():
			self.close()
			return [streams.retry(names, f"no PUBACK within {self.endpoint.timeout:g} s (sent again later)")]
		reason = self._acks.pop(info.mid, None)
		if reason is not None and getattr(reason, "is_failure", False):
			return [streams.dead(names, f"the MQTT broker refused the message on {message.target}: {reason}")]
		return [streams.delivered(names, f"PUBACK from the MQTT broker on {message.target}")]

	def message_preview(self, target: str | None, event: base.OutboundEvent) -> dict:
		message = streams.message_of(
			event, target or DEFAULT_TOPIC, streams.mqtt_token, self.endpoint.signing_secret
		)
		where = f"{self.endpoint.base_url} topic {message.target} (QoS 1, not retained)"
		return {"method": "PUBLISH", "url": where, "headers": message.headers}

	def ping(self) -> http.Response:
		started = time.monotonic()
		self._connected(streams.Deadline(self.endpoint.timeout))
		return streams.answered(time.monotonic() - started, "MQTT broker accepted the connection")

	# -- the client -------------------------------------------------------------------------------
	def _connected(self, deadline: streams.Deadline) -> mqtt.Client:
		with self._lock:
			client = self._client
			if client is not None and client.is_connected():
				return client
			self._client = None
			if client is not None:
				_stop(client)
			endpoint = self.endpoint
			broker = streams.broker_of(endpoint.base_url, SCHEMES, endpoint.allow_private)
			connected = threading.Event()
			refused: list = []

			def on_connect(client, userdata, flags, reason_code, properties):
				if reason_code.is_failure:
					refused.append(reason_code)
				connected.set()

			def on_publish(client, userdata, mid, reason_code, properties):
				self._acks[mid] = reason_code

			client = mqtt.Client(
				mqtt.CallbackAPIVersion.VERSION2,
				client_id="",
				protocol=mqtt.MQTTv5,
				reconnect_on_failure=False,
			)
			client.on_connect, client.on_publish = on_connect, on_publish
			client.connect_timeout = deadline.left()  # the TCP connect; CONNACK is awaited below
			if broker.username:
				client.username_pw_set(broker.username, broker.password)
			if broker.scheme == "mqtts":
				client.tls_set()
			default_port = 8883 if broker.scheme == "mqtts" else 1883
			client.connect(broker.host, broker.port or default_port, KEEPALIVE_SECONDS)
			client.loop_start()
			if not connected.wait(deadline.left()) or refused:
				_stop(client)
				what = (
					f"refused the connection: {refused[0]}" if refused else "did not answer CONNECT in time"
				)
				raise ConnectionError(f"the MQTT broker at {broker.host} {what}")
			self._client = client
			return client

	def close(self) -> None:
		with self._lock:
			client, self._client = self._client, None
			self._acks.clear()
		if client is not None:
			_stop(client)


def _stop(client: mqtt.Client) -> None:
	try:
		client.disconnect()
	except Exception:
		pass
	try:
		client.loop_stop()
	except Exception:
		pass
