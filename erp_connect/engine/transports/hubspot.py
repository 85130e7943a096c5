"""A HubSpot-style CRM (the CRM v3 objects API): companies, contacts and deals, both ways.

Out: one document per request. A document HubSpot does not know yet is created with
``POST /crm/v3/objects/<type>`` (its associations in the same body); the id HubSpot answers with is
handed back as the SendResult's ``external_id`` and kept as the document's Sync Link, so the next
save of it is a ``PATCH /crm/v3/objects/<type>/<id>`` (plus a ``PUT`` of each association on the v4
associations API) and never a second object. The ids are looked up when the event is sent, not
when it was saved (``OutboundEvent.remote_ids``): a Customer saved twice before its first event
went out is still created once and then updated. A contact whose email HubSpot already has
(409 "Existing ID: …") is adopted and updated instead of failing.

The payload (the rule's field map, engine/presets.py) is ``{"properties": {...}, "associations":
[{"doctype": "Customer", "name": "Acme"}, ...]}``: associations name ERPNext documents, which
become the HubSpot ids of their own Sync Links at send time; one that is not at HubSpot yet makes
the event wait (retried) until its own event has created it.

In: webhooks (signed ``X-HubSpot-Signature-v3``, engine/receive_schemes.py) carry only ids, so
each object is read (``GET /crm/v3/objects/<type>/<id>``) and written through the upsert with its
pull rule's field map (services/crm/receiver.py); pulls page its lists with ``after`` cursors.
Records read either way are normalized (``normalize``) so field maps read plain paths.

Auth: a private app's access token, as Auth Type Bearer Token.
"""

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from erp_connect.engine.encoding import dumps
from erp_connect.engine.mapping import FieldRule
from erp_connect.engine.retry import Outcome, Verdict
from erp_connect.engine.transports import base

OBJECTS_PATH = "/crm/v3/objects"
# the ERPNext doctype each HubSpot object type stands for (what associations name)
DOCTYPE_OBJECTS = {"Customer": "companies", "Contact": "contacts", "Opportunity": "deals"}
# a webhook's subscriptionType prefix -> the object type
EVENT_OBJECTS = {"company": "companies", "contact": "contacts", "deal": "deals"}
# HubSpot-defined association type ids (the default, unlabeled ones)
ASSOCIATION_TYPES = {
	("contacts", "companies"): 279,
	("deals", "companies"): 341,
	("deals", "contacts"): 3,
	("companies", "contacts"): 280,
}
WON_STAGE = "closedwon"
_OBJECT_PATH = re.compile(r"/crm/v3/objects/([A-Za-z0-9_]+)")
_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")


def object_type_of(path: str | None) -> str | None:
	"""The object type a list or target path names (``/crm/v3/objects/contacts?...`` -> contacts)."""
	match = _OBJECT_PATH.search(path or "")
	return match.group(1) if match else None


# -- reading ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HubSpotEvent:
	event_id: str
	object_type: str  # contacts, companies, deals (others: left alone)
	object_id: str
	action: str  # creation, propertyChange, deletion, associationChange, ...


def events_of(body) -> list[HubSpotEvent]:
	"""The events of a webhook body (a JSON array); ValueError for anything else."""
	if not isinstance(body, list):
		raise ValueError("a HubSpot webhook body is a list of events")
	events = []
	for raw in body:
		if not isinstance(raw, Mapping) or raw.get("eventId") in (None, "") or not raw.get("objectId"):
			raise ValueError("a HubSpot event needs eventId and objectId")
		prefix, _, action = str(raw.get("subscriptionType") or "").partition(".")
		events.append(
			HubSpotEvent(
				str(raw["eventId"]),
				EVENT_OBJECTS.get(prefix, prefix),
				str(raw["objectId"]),
				action,
			)
		)
	return events


def normalize(record: Mapping) -> dict:
	"""A HubSpot object as field maps read it: as it came, plus ``companies`` ([{"id"}], its
	associated companies once each), ``company_id`` (the first of them), and ``emails`` /
	``phones`` ([{"address"}] / [{"number"}]) for ERPNext's email and phone tables."""
	out = dict(record)
	properties = record.get("properties") or {}
	results = ((record.get("associations") or {}).get("companies") or {}).get("results") or []
	company_ids = list(dict.fromkeys(str(r["id"]) for r in results if isinstance(r, Mapping) and r.get("id")))
	out["companies"] = [{"id": i} for i in company_ids]
	out["company_id"] = company_ids[0] if company_ids else None
	out["emails"] = [{"address": properties["email"]}] if properties.get("email") else []
	out["phones"] = [{"number": properties["phone"]}] if properties.get("phone") else []
	return out


def list_query(field_rules: Iterable[FieldRule]) -> dict:
	"""The query a list (or one object) is read with: the properties the field map reads (HubSpot
	sends only a few by default) and the company associations when it reads them."""
	properties, associations = set(), False
	for rule in field_rules:
		root = (rule.source or "").split(".")[0].removesuffix("[]")
		if root == "properties" and "." in rule.source:
			properties.add(rule.source.split(".")[1].removesuffix("[]"))
		elif root in ("emails", "phones"):
			properties.add("email" if root == "emails" else "phone")
		elif root in ("companies", "company_id"):
			associations = True
	query = {"properties": ",".join(sorted(properties))} if properties else {}
	if associations:
		query["associations"] = "companies"
	return query


WON_DEAL_PROPERTIES = ("amount", "closedate", "dealstage")  # what a won deal's order is made of


def object_query(object_type: str, field_rules: Iterable[FieldRule]) -> dict:
	"""The query one object is read with for a webhook: its list's, and for a deal what tells
	whether it is won and what its order is made of."""
	query = list_query(field_rules)
	if object_type == "deals":
		wanted = {p for p in query.get("properties", "").split(",") if p} | set(WON_DEAL_PROPERTIES)
		query["properties"] = ",".join(sorted(wanted))
	return query


def is_won(record: Mapping) -> bool:
	return (record.get("properties") or {}).get("dealstage") == WON_STAGE


def error_message(body: bytes) -> str:
	"""HubSpot's error answer ``{"status": "error", "message", "category", "errors": [...]}`` as one
	line; the raw text when it is something else."""
	try:
		error = json.loads(body)
		details = "; ".join(
			str(e.get("message")) for e in error.get("errors") or [] if isinstance(e, Mapping)
		)
		parts = (
			error.get("category") and f"{error['category']}:",
			error.get("message"),
			details and f"({details})",
		)
		return " ".join(p for p in parts if p) or body[:300].decode("utf-8", "replace")
	except (ValueError, TypeError, AttributeError):
		return body[:300].decode("utf-8", "replace")


# -- the transport --------------------------------------------------------------------------------
class Unsendable(ValueError):
	"""The event cannot be sent as it is (its verdict says whether waiting helps)."""

	def __init__(self, verdict: Verdict):
		self.verdict = verdict
		super().__init__(verdict.reason)


class HubSpotTransport(base.Transport):
	one_document_per_request = True
	requests_per_send = 3  # a PATCH and up to two association PUTs (a create is one POST)
	needs_remote_ids = True
	receives = "crm events"  # webhooks name objects by id: services/crm/receiver.py reads and writes them
	receive_scheme = "HubSpot v3"

	@classmethod
	def pull_defaults(cls, doctype: str) -> dict:
		"""HubSpot's lists: ``?limit=100&after=<cursor>``, the next cursor at ``paging.next.after``,
		the records at ``results``; no "changed since" filter on lists, so every run reads all."""
		defaults = {
			"pagination_style": "Cursor Token",
			"records_path": "results",
			"next_path": "paging.next.after",
			"cursor_param": "after",
			"size_param": "limit",
			"page_size": 100,
			"since_param": "",
			"id_field": "id",
			"modified_field": "updatedAt",
		}
		if doctype in DOCTYPE_OBJECTS:
			defaults["list_path"] = f"{OBJECTS_PATH}/{DOCTYPE_OBJECTS[doctype]}"
		return defaults

	list_query = staticmethod(list_query)

	@staticmethod
	def records_read(records: list[dict]) -> list[dict]:
		return [normalize(r) for r in records]

	@staticmethod
	def documents_named(payload: Mapping) -> list[tuple[str, str]]:
		"""The documents whose HubSpot ids sending this event needs: its own and its associations'."""
		named = [(payload.get("doctype"), payload.get("name"))]
		named += [(a.get("doctype"), a.get("name")) for a in associations_of(payload.get("data") or {})]
		return [(d, n) for d, n in named if d and n]

	def headers(self) -> dict:
		return {
			"Content-Type": "application/json",
			"Accept": "application/json",
			**self.endpoint.auth_headers,
		}

	def read_object(self, object_type: str, object_id: str, query: Mapping[str, str]):
		"""One object (``GET /crm/v3/objects/<type>/<id>``) as an http.Response."""
		params = "&".join(f"{k}={quote(str(v), safe=',')}" for k, v in query.items())
		url = self.endpoint.url_for(f"{OBJECTS_PATH}/{object_type}/{quote(object_id, safe='')}")
		return self.request("GET", url + (f"?{params}" if params else ""), None, self.headers())

	def send(self, route: base.Route, events: Sequence[base.OutboundEvent]) -> list[base.SendResult]:
		(event,) = events
		names = [event.name]
		payload = json.loads(event.payload)
		object_type = object_type_of(route.target) or DOCTYPE_OBJECTS.get(payload.get("doctype"))
		try:
			if not object_type:
				raise Unsendable(
					Verdict(
						Outcome.DEAD,
						"the rule's Target Path names no HubSpot object (/crm/v3/objects/<type>)",
					)
				)
			data = payload.get("data") or {}
			targets = self.association_targets(object_type, data, event.remote_ids)
			own_id = event.remote_ids.get((payload.get("doctype"), payload.get("name")))
			properties = data.get("properties") or {}
			if own_id:
				response = self.update(object_type, own_id, properties, targets)
			else:
				response = self.create(object_type, properties, targets)
		except Unsendable as e:
			return [base.SendResult(names, e.verdict)]
		except base.NO_RESPONSE as e:
			return [base.result_of_exception(names, e)]
		if not 200 <= response.status < 300:
			return [failure(names, response)]
		try:
			remote_id = str(json.loads(response.body)["id"])
		except (ValueError, KeyError, TypeError) as e:
			return [base.SendResult(names, Verdict(Outcome.RETRY, f"unreadable answer from HubSpot: {e}"))]
		return [
			base.SendResult(
				names,
				Verdict(Outcome.DELIVERED, f"HubSpot {object_type} {remote_id}"),
				response.status,
				response.body[: base.RESPONSE_EXCERPT].decode("utf-8", "replace"),
				external_id=remote_id,
			)
		]

	def association_targets(
		self, object_type: str, data: Mapping, remote_ids: Mapping
	) -> list[tuple[str, str]]:
		"""(object type, HubSpot id) of each association the payload names that HubSpot has a type
		for; Unsendable (retried) while one of them is not at HubSpot yet."""
		targets = []
		for a in associations_of(data):
			to_type = DOCTYPE_OBJECTS.get(a.get("doctype"))
			if not to_type or (object_type, to_type) not in ASSOCIATION_TYPES or not a.get("name"):
				continue  # a Contact's link to a Supplier: HubSpot has no such association
			remote = remote_ids.get((a["doctype"], a["name"]))
			if not remote:
				raise Unsendable(
					Verdict(
						Outcome.RETRY,
						f"{a['doctype']} {a['name']} is not at HubSpot yet: this waits until it is sent",
					)
				)
			targets.append((to_type, remote))
		return list(dict.fromkeys(targets))

	def create(self, object_type: str, properties: Mapping, targets: list[tuple[str, str]]):
		body = {
			"properties": properties,
			"associations": [
				{
					"to": {"id": to_id},
					"types": [
						{
							"associationCategory": "HUBSPOT_DEFINED",
							"associationTypeId": ASSOCIATION_TYPES[(object_type, to_type)],
						}
					],
				}
				for to_type, to_id in targets
			],
		}
		url = self.endpoint.url_for(f"{OBJECTS_PATH}/{object_type}")
		response = self.request("POST", url, dumps(body).encode(), self.headers())
		existing = response.status == 409 and _EXISTING_ID.search(response.body.decode("utf-8", "replace"))
		if existing:  # a contact with this email is there already: it is this document's
			return self.update(object_type, existing.group(1), properties, targets)
		return response

	def update(self, object_type: str, remote_id: str, properties: Mapping, targets: list[tuple[str, str]]):
		url = self.endpoint.url_for(f"{OBJECTS_PATH}/{object_type}/{quote(remote_id, safe='')}")
		response = self.request("PATCH", url, dumps({"properties": properties}).encode(), self.headers())
		if response.status == 404:
			raise Unsendable(
				Verdict(
					Outcome.DEAD,
					f"HubSpot has no {object_type} {remote_id} any more (deleted there?): delete its Sync Link "
					"to create it again",
				)
			)
		if not 200 <= response.status < 300:
			return response
		for to_type, to_id in targets:  # PUT is idempotent: an association already there stays one
			path = (
				f"/crm/v4/objects/{object_type}/{quote(remote_id, safe='')}/associations/default/"
				f"{to_type}/{quote(to_id, safe='')}"
			)
			associated = self.request("PUT", self.endpoint.url_for(path), b"", self.headers())
			if not 200 <= associated.status < 300:
				return associated
		return response

	def ping(self):
		"""One authenticated read of the contacts list (a wrong token answers 401)."""
		return self.request(
			"GET", self.endpoint.url_for(f"{OBJECTS_PATH}/contacts?limit=1"), None, self.headers()
		)


def associations_of(data: Mapping) -> list[Mapping]:
	value = data.get("associations") or []
	value = [value] if isinstance(value, Mapping) else value
	return [a for a in value if isinstance(a, Mapping)]


def failure(names: list[str], response) -> base.SendResult:
	"""A non-2xx answer classified as any other (429 and 5xx retried with Retry-After, 400 and
	401 dead), with HubSpot's own message in the reason."""
	result = base.result_of_response(names, response)
	verdict = dataclasses.replace(
		result.verdict, reason=f"{result.verdict.reason}: {error_message(response.body)}"
	)
	return dataclasses.replace(result, verdict=verdict)
