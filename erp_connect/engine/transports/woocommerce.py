"""WooCommerce's REST API (``/wp-json/wc/v3``): pulls read its lists (transports.base), pushes update
one product per event with ``PUT <target>``, the rule's Target Path naming it by the WooCommerce id
the event's data carries at ``id`` (``/wp-json/wc/v3/products/{id}``). The body is the rule's mapped
fields themselves, as WooCommerce reads them (``{"stock_quantity": 7}``), not an envelope; the event
id still goes as Idempotency-Key. Authenticate with Basic auth (consumer key and secret).
"""

import json
from collections.abc import Sequence
from urllib.parse import quote

from erp_connect.engine import outbound
from erp_connect.engine.encoding import dumps
from erp_connect.engine.transports import base
from erp_connect.engine.transports.streams import dead

DEFAULT_TARGET = "/wp-json/wc/v3/products/{id}"


class WooCommerceTransport(base.Transport):
	one_document_per_request = True  # one product per request

	def send(self, route: base.Route, events: Sequence[base.OutboundEvent]) -> list[base.SendResult]:
		(event,) = events
		data = dict(json.loads(event.payload).get("data") or {})
		product = data.pop("id", None)
		if product in (None, ""):
			reason = "no WooCommerce product id: map the document's name to id with External ID Link"
			return [dead([event.name], reason)]
		path = (route.target or DEFAULT_TARGET).replace("{id}", quote(str(product), safe=""))
		body = dumps(data).encode()
		endpoint = self.endpoint
		headers = outbound.request_headers(
			event.event_id, body, endpoint.signing_secret, endpoint.auth_headers
		)
		try:
			response = self.request("PUT", endpoint.url_for(path), body, headers)
		except base.NO_RESPONSE as e:
			return [base.result_of_exception([event.name], e)]
		return [base.result_of_response([event.name], response)]
