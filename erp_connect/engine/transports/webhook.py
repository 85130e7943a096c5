"""A webhook receiver or REST API: each event (or batch of events) is one signed HTTP request,
with the event id as webhook-id and Idempotency-Key (engine/outbound.py has the wire format)."""

from collections.abc import Sequence

from erp_connect.engine import outbound
from erp_connect.engine.encoding import dumps
from erp_connect.engine.transports import base


class WebhookTransport(base.Transport):
	def send(self, route: base.Route, events: Sequence[base.OutboundEvent]) -> list[base.SendResult]:
		names = [e.name for e in events]
		if route.batch_size == 1:  # a rule with batching always sends the batch shape
			msg_id, body = events[0].event_id, events[0].payload
		else:
			msg_id = outbound.batch_id([e.event_id for e in events])
			body = outbound.batch_body([e.payload for e in events])
		body_bytes = body.encode()
		endpoint = self.endpoint
		headers = outbound.request_headers(msg_id, body_bytes, endpoint.signing_secret, endpoint.auth_headers)
		try:
			response = self.request(route.method, endpoint.url_for(route.target), body_bytes, headers)
		except base.NO_RESPONSE as e:
			return [base.result_of_exception(names, e)]
		return [base.result_of_response(names, response)]

	def ping(self):
		"""A signed ``erp_connect.ping`` POST, as a receiver verifies every delivery."""
		msg_id = outbound.new_event_id()
		body = dumps({"type": "erp_connect.ping", "id": msg_id}).encode()
		endpoint = self.endpoint
		headers = outbound.request_headers(msg_id, body, endpoint.signing_secret, endpoint.auth_headers)
		return self.request("POST", endpoint.base_url, body, headers)


class RestApiTransport(WebhookTransport):
	"""A REST API the business's own rules post to; Test Connection reads its base URL."""

	ping = base.Transport.ping


class InboundOnly(base.Transport):
	"""Systems that only call us (POS terminals): there is nothing to send to."""

	calls_out = False


class MobileApp(InboundOnly):
	"""A mobile app: the people using it sign in with OAuth and call the API as themselves."""

	callers_are_people = True
