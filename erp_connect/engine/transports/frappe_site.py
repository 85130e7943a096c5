"""Another ERPNext site as a connector: the REST requests that apply one outbox event there.

Documents keep their names on both sites (Items by item code, Price Lists and Customers named by a
field), so an event updates ``/api/resource/<DocType>/<name>`` and creates it when it is not there.
"""

import json
from collections.abc import Sequence
from urllib.parse import quote

from erp_connect.engine import outbound, pagination
from erp_connect.engine.encoding import dumps
from erp_connect.engine.retry import classify_response
from erp_connect.engine.transports import base

# a tree doctype's nested-set bookkeeping (Item Group, Warehouse, Territory): each site numbers its
# own tree, so another site's numbers written here would corrupt it
NESTED_SET_FIELDS = frozenset({"lft", "rgt", "old_parent"})
# what the receiving site sets itself, pushed or pulled: sending it back would fail or overwrite
# its own bookkeeping
SYSTEM_FIELDS = (
	frozenset(
		"name owner creation modified modified_by docstatus idx doctype amended_from".split()
		+ "parent parentfield parenttype".split()
	)
	| NESTED_SET_FIELDS
)


def resource_path(doctype: str, name: str | None = None) -> str:
	path = "/api/resource/" + quote(doctype)
	return f"{path}/{quote(name, safe='')}" if name else path


def clean_record(data):
	"""A document as the other site accepts it: no system fields or underscore fields, child rows too."""
	if isinstance(data, list):
		return [clean_record(row) for row in data]
	if not isinstance(data, dict):
		return data
	return {
		k: clean_record(v)
		for k, v in data.items()
		if k not in SYSTEM_FIELDS and not k.startswith("_") and v is not None
	}


def requests_for(event: dict) -> list[tuple[str, str, bytes | None]]:
	"""The requests to try in order for one event envelope: (method, path, body). The next one is
	tried only when the previous answered 404."""
	doctype, name = event["doctype"], event["name"]
	if str(event.get("type", "")).endswith(".on_trash"):
		return [("DELETE", resource_path(doctype, name), None)]
	record = clean_record(event.get("data") or {})
	return [
		("PUT", resource_path(doctype, name), dumps(record).encode()),
		("POST", resource_path(doctype), dumps({**record, "name": name}).encode()),
	]


class FrappeSiteTransport(base.Transport):
	"""Push: one document per request through the other site's REST API. Pull: its standard
	list, keyset-paged on (modified, name), adopting local documents of the same name."""

	one_document_per_request = True
	requests_per_send = 2  # a PUT, then a POST when the document is not there yet
	adopts_same_names = True

	def send(self, route: base.Route, events: Sequence[base.OutboundEvent]) -> list[base.SendResult]:
		"""Update the document on the other site, or create it there when it answers 404."""
		(event,) = events
		attempts = requests_for(json.loads(event.payload))
		headers = outbound.request_headers(event.event_id, b"", None, self.endpoint.auth_headers)
		try:
			for method, path, body in attempts:
				response = self.request(method, self.endpoint.url_for(path), body, headers)
				if response.status != 404:
					break
		except base.NO_RESPONSE as e:
			return [base.result_of_exception([event.name], e)]
		if method == "DELETE" and response.status == 404:
			return [base.SendResult([event.name], classify_response(200), 404, "already deleted there")]
		return [base.result_of_response([event.name], response)]

	@classmethod
	def pull_defaults(cls, doctype: str) -> dict:
		return {
			"pagination_style": pagination.FRAPPE,
			"list_path": resource_path(doctype),
			"records_path": "data",
			"id_field": "name",
			"modified_field": "modified",
		}
