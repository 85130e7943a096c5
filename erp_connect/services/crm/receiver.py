"""A CRM's webhook delivery (HubSpot) turned into documents.

A HubSpot event carries only an object's id, so each object an event names is read from HubSpot as
it is now (``GET /crm/v3/objects/<type>/<id>``) and written through the one upsert path with the
connector's Pull Rule for that object type: the same field map and conflict policy as the
scheduled pull, the same Sync Links. The events of a delivery are applied once (the inbox keeps
the delivery under its event ids); an object named by several events is read once; an event
applied again reads the object again and finds it unchanged. Companies are written before the
contacts and deals that point at them, and a company a contact or deal is associated with that
this site has not seen yet is read first, so the Contact's link to its Customer always resolves.

A deal in the stage ``closedwon`` becomes, once, what the connector's **Won Deals Become** says (a
draft Sales Order or Quotation for the deal's company's Customer, one row of the **Deal Item** at
the deal's amount): the new document's Sync Link is keyed by the deal id, so a deal won again, or
its webhook sent twice, makes no second one.
"""

import json

import frappe
from frappe import _
from frappe.utils import getdate, nowdate

from erp_connect.engine.specs import InboundSpec
from erp_connect.engine.transports import base, hubspot
from erp_connect.services.common.status import CREATED, ERROR
from erp_connect.services.common.users import run_as_api_user
from erp_connect.services.inbound.upsert import upsert

ORDER = ("companies", "contacts", "deals")  # what others point at comes first


class ReadFailed(Exception):
	"""HubSpot did not give us the object: the delivery fails and is retried."""


def apply_delivery(connector: "frappe.Document", request: "frappe.Document") -> tuple[dict, list[str]]:
	"""The inbox's receiver for CRM kinds: (result, errors). Each object is written on its own (the
	upsert's savepoints); an object that fails makes the delivery Failed, so it is retried, and
	retrying writes again only what is not written yet."""
	events = hubspot.events_of(json.loads(request.body))
	rules = pull_rules_by_object(connector.name)
	last_action = {}
	for event in events:
		last_action[(event.object_type, event.object_id)] = event.action
	ordered = sorted(
		last_action.items(), key=lambda kv: ORDER.index(kv[0][0]) if kv[0][0] in ORDER else len(ORDER)
	)
	sync = CrmSync(connector, rules, request.name)
	results, errors = [], []
	with run_as_api_user(connector.api_user, _("Connector {0}").format(connector.name)):
		for (object_type, object_id), action in ordered:
			label = f"{object_type}/{object_id}"
			if object_type not in rules:
				results.append({"object": label, "status": "ignored", "reason": _("no Pull Rule reads it")})
				continue
			if action == "deletion":
				reason = _("deletions are not synced: the ERPNext document stays")
				results.append({"object": label, "status": "ignored", "reason": reason})
				continue
			try:
				outcome = sync.object(object_type, object_id)
			except (ReadFailed, *base.NO_RESPONSE) as e:
				outcome = {"status": ERROR, "error": _("{0}: {1}").format(label, e)}
			results.append({"object": label, **outcome})
			errors += [r["error"] for r in [outcome, *outcome.get("also", [])] if r.get("status") == ERROR]
	return {"events": len(events), "objects": results}, errors


def pull_rules_by_object(connector: str) -> dict:
	"""The connector's enabled Pull Rules by the HubSpot object type their List Path reads."""
	rules = {}
	for name in frappe.get_all("Pull Rule", {"connector": connector, "enabled": 1}, pluck="name"):
		rule = frappe.get_doc("Pull Rule", name)
		object_type = hubspot.object_type_of(rule.list_path)
		if object_type:
			rules.setdefault(object_type, rule)
	return rules


class CrmSync:
	def __init__(self, connector, rules: dict, correlation_id: str):
		self.connector = connector
		self.rules = rules
		self.correlation_id = correlation_id
		self.transport = connector.transport()

	def object(self, object_type: str, object_id: str) -> dict:
		"""Read one object and upsert it (its companies first, when they are new here)."""
		record = self.read(object_type, object_id)
		if record is None:
			return {"status": "gone", "reason": _("HubSpot has no such object any more")}
		also = []
		companies = self.rules.get("companies")
		if object_type != "companies" and companies:
			for company in record["companies"]:
				if not linked(self.connector.name, companies.reference_doctype, company["id"]):
					also.append(
						{"object": f"companies/{company['id']}", **self.object("companies", company["id"])}
					)
		outcome = self.upsert(self.rules[object_type], record)
		if object_type == "deals" and hubspot.is_won(record) and self.connector.won_deals_become:
			also.append({"object": f"won deal {object_id}", **self.won_deal(record)})
		return {**outcome, "also": also} if also else outcome

	def read(self, object_type: str, object_id: str) -> dict | None:
		rule = self.rules[object_type]
		query = hubspot.object_query(object_type, rule.inbound_field_rules())
		response = self.transport.read_object(object_type, object_id, query)
		if response.status == 404:
			return None
		if not 200 <= response.status < 300:
			raise ReadFailed(
				_("HubSpot answered HTTP {0}: {1}").format(
					response.status, hubspot.error_message(response.body)
				)
			)
		try:
			return hubspot.normalize(json.loads(response.body))
		except (ValueError, AttributeError) as e:
			raise ReadFailed(_("HubSpot's answer is not an object: {0}").format(e))

	def upsert(self, rule, record: dict, doctype: str | None = None, spec: InboundSpec | None = None) -> dict:
		result = upsert(
			self.connector,
			doctype or rule.reference_doctype,
			[record],
			spec=spec or rule.upsert_spec(),
			correlation_id=self.correlation_id,
		)
		outcome = result["results"][0]
		return {k: v for k, v in outcome.items() if k != "index"}

	def won_deal(self, deal: dict) -> dict:
		"""A draft Sales Order (or Quotation) for the won deal, once per deal."""
		connector = self.connector
		doctype = connector.won_deals_become
		if linked(connector.name, doctype, deal["id"]):
			return {"status": "exists", "reason": _("made when the deal was first won")}
		customer = self.customer_of(deal)
		problem = (
			not connector.deal_item
			and _("set the connector's Deal Item: the item a won deal's {0} is made of").format(_(doctype))
		) or (not customer and _("won deal {0} has no company synced as a Customer").format(deal["id"]))
		if problem:
			return {"status": ERROR, "error": problem}
		properties = deal.get("properties") or {}
		today = nowdate()
		record = {
			"id": deal["id"],
			"company": frappe.defaults.get_user_default("Company")
			or frappe.defaults.get_global_default("company"),
			"transaction_date": today,
			"items": [
				{"item_code": connector.deal_item, "qty": 1, "rate": float(properties.get("amount") or 0)}
			],
		}
		if doctype == "Quotation":
			record.update(quotation_to="Customer", party_name=customer)
		else:
			closes = (properties.get("closedate") or "")[:10]
			record.update(customer=customer, delivery_date=max(getdate(closes or today), getdate(today)))
		outcome = self.upsert(None, record, doctype, InboundSpec(external_id_path="id"))
		if outcome.get("status") == CREATED:
			outcome["reason"] = _("deal {0} was won").format(deal["id"])
		return outcome

	def customer_of(self, deal: dict) -> str | None:
		companies = self.rules.get("companies")
		doctype = companies.reference_doctype if companies else "Customer"
		for company in deal["companies"]:
			name = linked(self.connector.name, doctype, company["id"])
			if name:
				return name
		return None


def linked(connector: str, doctype: str, external_id: str) -> str | None:
	"""The document a Sync Link of the connector gives ``external_id``, or None."""
	return frappe.db.get_value(
		"Sync Link",
		{"connector": connector, "reference_doctype": doctype, "external_id": str(external_id)},
		"reference_name",
	)
