"""The HubSpot kind: its v3 webhook signature, how its events and objects are read, and one object
per document against the fake HubSpot (a real HTTP server on 127.0.0.1), whatever it answers."""

import base64
import hashlib
import hmac
import json

import pytest

from erp_connect.engine import outbound, receive_schemes, signing, transports
from erp_connect.engine.mapping import FieldRule, map_record
from erp_connect.engine.presets import HUBSPOT_CONTACT_IN, PRESETS
from erp_connect.engine.retry import Outcome
from erp_connect.engine.signing import WebhookVerificationError
from erp_connect.engine.transports import Endpoint, OutboundEvent, Route
from erp_connect.engine.transports import hubspot as hs
from erp_connect.testing.hubspot import FakeHubSpot, error_body

SECRET = "app-client-secret-1b2c"
URL = "https://erp.example.com/api/method/erp_connect.api.v1.receive?connector=HubSpot"
T_MS = 1_795_526_400_123
NOW = T_MS / 1000
BODY = b'[{"eventId":1,"subscriptionType":"contact.creation","objectId":123,"occurredAt":1795526400000}]'
TOKEN = "pat-na1-unit"


def sign(body=BODY, url=URL, method="POST", ts=T_MS, secret=SECRET):
	return signing.hubspot_signature(secret, method, url, body, ts)


def verify(signature, ts=T_MS, urls=(URL,), body=BODY, method="POST", now=NOW, secret=SECRET):
	return signing.verify_hubspot(secret, signature, str(ts), method, urls, body, now=now)


# -- the v3 signature ---------------------------------------------------------------------------
def test_the_signature_is_base64_hmac_of_method_uri_body_and_timestamp():
	expected = hmac.new(
		SECRET.encode(), b"POST" + URL.encode() + BODY + str(T_MS).encode(), hashlib.sha256
	).digest()
	assert sign() == base64.b64encode(expected).decode()
	assert verify(sign()) == T_MS


def test_a_wrong_signature_or_secret_is_refused():
	with pytest.raises(WebhookVerificationError, match="no matching"):
		verify(sign(secret="another-secret"))
	with pytest.raises(WebhookVerificationError, match="no matching"):
		verify(base64.b64encode(b"x" * 32).decode())
	with pytest.raises(WebhookVerificationError, match="missing"):
		verify(None)
	with pytest.raises(WebhookVerificationError, match="no signing secret"):
		verify(sign(), secret=None)


@pytest.mark.parametrize("seconds", [301, -301, 3600])
def test_a_stale_or_future_timestamp_is_refused_even_when_signed(seconds):
	ts = T_MS - seconds * 1000
	with pytest.raises(WebhookVerificationError, match="tolerance"):
		verify(sign(ts=ts), ts=ts)


def test_the_timestamp_is_in_milliseconds_and_five_minutes_are_fine():
	ts = T_MS - 299_000
	assert verify(sign(ts=ts), ts=ts) == ts
	with pytest.raises(WebhookVerificationError, match="integer"):
		signing.verify_hubspot(SECRET, sign(), "12:00", "POST", [URL], BODY, now=NOW)


def test_a_tampered_body_uri_method_or_timestamp_is_refused():
	signature = sign()
	with pytest.raises(WebhookVerificationError):
		verify(signature, body=BODY.replace(b"123", b"124"))
	with pytest.raises(WebhookVerificationError):
		verify(signature, urls=(URL.replace("HubSpot", "Other"),))
	with pytest.raises(WebhookVerificationError):
		verify(signature, method="PUT")
	with pytest.raises(WebhookVerificationError):
		verify(signature, ts=T_MS + 1)


def test_the_uri_is_signed_with_hubspots_listed_escapes_decoded():
	encoded = "https://erp.example.com/api/method/x?connector=Hub%3ASpot%2CCRM&a=%20b"
	assert (
		signing.hubspot_uri(encoded) == "https://erp.example.com/api/method/x?connector=Hub:Spot,CRM&a=%20b"
	)
	signature = sign(url="https://erp.example.com/api/method/x?connector=Hub:Spot,CRM&a=%20b")
	assert verify(signature, urls=(encoded,)) == T_MS


def test_any_of_the_urls_the_site_may_have_been_called_at_matches():
	http_url = URL.replace("https://", "http://")
	assert verify(sign(), urls=(http_url, URL)) == T_MS
	with pytest.raises(WebhookVerificationError):
		verify(sign(), urls=(http_url,))


def test_the_scheme_returns_a_delivery_id_made_of_the_signed_event_ids():
	scheme = receive_schemes.scheme("HubSpot v3")
	headers = {"x-hubspot-signature-v3": sign(), "x-hubspot-request-timestamp": str(T_MS)}
	request = receive_schemes.RequestLine("POST", (URL,))
	delivery = scheme.verify(SECRET, headers, BODY, {}, now=NOW, request=request)
	assert delivery.startswith("hubspot:") and scheme.signs_delivery_id
	reordered = json.dumps(list(reversed([*json.loads(BODY), {"eventId": 2, "objectId": 5}]))).encode()
	both = json.dumps([*json.loads(BODY), {"eventId": 2, "objectId": 5}]).encode()
	assert receive_schemes.hubspot_delivery_id(reordered) == receive_schemes.hubspot_delivery_id(both)
	assert receive_schemes.hubspot_delivery_id(both) != delivery
	with pytest.raises(WebhookVerificationError):  # no method and URL given: nothing can match
		scheme.verify(SECRET, headers, BODY, {}, now=NOW)
	with pytest.raises(WebhookVerificationError, match="eventId"):
		receive_schemes.hubspot_delivery_id(b'{"eventId": 1}')


# -- reading events and objects ---------------------------------------------------------------------
def test_events_name_their_object_type_and_action():
	body = [
		{"eventId": 7, "subscriptionType": "company.propertyChange", "objectId": 42, "propertyName": "name"},
		{"eventId": 8, "subscriptionType": "deal.creation", "objectId": 9},
	]
	assert hs.events_of(body) == [
		hs.HubSpotEvent("7", "companies", "42", "propertyChange"),
		hs.HubSpotEvent("8", "deals", "9", "creation"),
	]
	for bad in ({"eventId": 1}, [{"objectId": 1}], ["x"]):
		with pytest.raises(ValueError):
			hs.events_of(bad)


def test_an_object_is_normalized_for_field_maps():
	record = {
		"id": "51",
		"properties": {"firstname": "Ann", "email": "ann@example.com", "phone": None},
		"associations": {
			"companies": {
				"results": [
					{"id": "7", "type": "contact_to_company"},
					{"id": "7", "type": "contact_to_company_unlabeled"},
					{"id": "8", "type": "contact_to_company_unlabeled"},
				]
			}
		},
	}
	out = hs.normalize(record)
	assert out["companies"] == [{"id": "7"}, {"id": "8"}] and out["company_id"] == "7"
	assert out["emails"] == [{"address": "ann@example.com"}] and out["phones"] == []
	assert hs.normalize({"id": "1", "properties": {}})["company_id"] is None


def test_the_contact_map_links_the_contact_to_its_companies_customers():
	rules = [FieldRule(path, field, t, o) for field, path, t, o in HUBSPOT_CONTACT_IN]
	record = hs.normalize(
		{
			"id": "51",
			"properties": {"firstname": "Ann", "lastname": "Lee", "email": "ann@example.com"},
			"associations": {"companies": {"results": [{"id": "7", "type": "contact_to_company"}]}},
		}
	)
	names = {"7": "Acme Ltd"}
	data = map_record(record, rules, "in", None, lambda doctype, external_id: names[external_id])
	assert data["links"] == [{"link_doctype": "Customer", "link_name": "Acme Ltd"}]
	assert data["email_ids"] == [{"email_id": "ann@example.com", "is_primary": 1}]
	assert data["first_name"] == "Ann" and data["phone_nos"] == []


def test_lists_ask_for_the_properties_and_associations_the_map_reads():
	rules = [FieldRule(path, field, t, o) for field, path, t, o in HUBSPOT_CONTACT_IN]
	assert hs.list_query(rules) == {
		"properties": "email,firstname,lastname,phone",
		"associations": "companies",
	}
	assert hs.list_query([]) == {}
	assert hs.object_type_of("/crm/v3/objects/deals?limit=1") == "deals"
	assert hs.object_type_of("/api/customers") is None


def test_the_preset_pulls_pushes_and_receives_all_three_objects():
	preset = PRESETS["CRM (HubSpot)"]
	assert {p["doctype"] for p in preset["pull"]} == {"Customer", "Contact", "Opportunity"}
	assert {p["target"] for p in preset["push"]} == {
		"/crm/v3/objects/companies",
		"/crm/v3/objects/contacts",
		"/crm/v3/objects/deals",
	}
	assert preset["receive"]["scheme"] == "HubSpot v3"
	assert transports.kind("HubSpot").receive_scheme == "HubSpot v3"


# -- sending ---------------------------------------------------------------------------------------
@pytest.fixture
def hub():
	with FakeHubSpot(token=TOKEN) as fake:
		yield fake


def transport(hub, token=TOKEN):
	return transports.kind("HubSpot")(
		Endpoint(hub.url, timeout=5, allow_private=True, auth_headers={"Authorization": f"Bearer {token}"})
	)


def event(doctype, name, data, remote_ids=None):
	ref = outbound.EventRef(outbound.new_event_id(), doctype, name, "on_update", 1, "2026-12-01T10:00:00")
	return OutboundEvent(ref.event_id, ref.event_id, outbound.envelope(ref, data), remote_ids or {})


COMPANIES = Route("/crm/v3/objects/companies")
CONTACTS = Route("/crm/v3/objects/contacts")


def test_a_new_document_is_created_and_its_id_handed_back(hub):
	(result,) = transport(hub).send(COMPANIES, [event("Customer", "Acme", {"properties": {"name": "Acme"}})])
	assert result.verdict.outcome is Outcome.DELIVERED
	assert hub.get("companies", result.external_id)["properties"]["name"] == "Acme"
	assert hub.count("POST") == 1


def test_a_known_document_is_patched_with_its_associations_put(hub):
	company = hub.add("companies", {"name": "Acme"})
	contact = hub.add("contacts", {"firstname": "Ann"})
	data = {"properties": {"firstname": "Anna"}, "associations": [{"doctype": "Customer", "name": "Acme"}]}
	ids = {("Contact", "C-1"): contact, ("Customer", "Acme"): company}
	(result,) = transport(hub).send(CONTACTS, [event("Contact", "C-1", data, ids)])
	assert result.verdict.outcome is Outcome.DELIVERED and result.external_id == contact
	assert hub.get("contacts", contact)["properties"]["firstname"] == "Anna"
	assert hub.associated("contacts", contact, "companies") == [company]
	assert hub.count("POST") == 0 and hub.count("PATCH") == 1 and hub.count("PUT") == 1


def test_a_new_contact_is_created_with_its_company_in_the_same_request(hub):
	company = hub.add("companies", {"name": "Acme"})
	data = {
		"properties": {"firstname": "Ann"},
		"associations": [{"doctype": "Customer", "name": "Acme"}, {"doctype": "Supplier", "name": "S"}],
	}
	(result,) = transport(hub).send(
		CONTACTS, [event("Contact", "C-1", data, {("Customer", "Acme"): company})]
	)
	assert hub.associated("contacts", result.external_id, "companies") == [company]
	(_, _, body) = hub.bodies[-1]
	assert body["associations"][0]["types"][0]["associationTypeId"] == 279


def test_an_association_not_at_hubspot_yet_waits(hub):
	data = {"properties": {"firstname": "Ann"}, "associations": [{"doctype": "Customer", "name": "New"}]}
	(result,) = transport(hub).send(CONTACTS, [event("Contact", "C-1", data)])
	assert result.verdict.outcome is Outcome.RETRY and "not at HubSpot yet" in result.verdict.reason
	assert hub.count("POST") == 0


def test_a_contact_whose_email_hubspot_has_is_adopted_not_duplicated(hub):
	existing = hub.add("contacts", {"email": "ann@example.com", "firstname": "A"})
	data = {"properties": {"email": "ann@example.com", "firstname": "Ann"}}
	(result,) = transport(hub).send(CONTACTS, [event("Contact", "C-1", data)])
	assert result.verdict.outcome is Outcome.DELIVERED and result.external_id == existing
	assert (
		len(hub.find("contacts")) == 1 and hub.get("contacts", existing)["properties"]["firstname"] == "Ann"
	)


def test_hubspots_answers_are_classified(hub):
	send = transport(hub).send
	hub.fail("create", 429, retry_after=7)
	(limited,) = send(COMPANIES, [event("Customer", "A", {"properties": {"name": "A"}})])
	assert limited.verdict.outcome is Outcome.RETRY and limited.verdict.retry_after == 7
	(invalid,) = send(COMPANIES, [event("Customer", "A", {"properties": {"nickname": "A"}})])
	assert invalid.verdict.outcome is Outcome.DEAD and invalid.status_code == 400
	assert "VALIDATION_ERROR: Property values were not valid" in invalid.verdict.reason
	assert 'Property "nickname" does not exist' in invalid.verdict.reason
	(refused,) = transport(hub, token="wrong").send(COMPANIES, [event("Customer", "A", {"properties": {}})])
	assert refused.verdict.outcome is Outcome.DEAD and refused.status_code == 401
	assert "INVALID_AUTHENTICATION" in refused.verdict.reason
	(gone,) = send(
		COMPANIES, [event("Customer", "A", {"properties": {"name": "A"}}, {("Customer", "A"): "999"})]
	)
	assert gone.verdict.outcome is Outcome.DEAD and "no companies 999" in gone.verdict.reason
	hub.fail("create", 500)
	(broken,) = send(COMPANIES, [event("Customer", "A", {"properties": {"name": "A"}})])
	assert broken.verdict.outcome is Outcome.RETRY
	assert hub.find("companies") == []


def test_error_message_reads_hubspots_error_shape():
	body = json.dumps(error_body("VALIDATION_ERROR", "bad", [{"message": "x is invalid"}])).encode()
	assert hs.error_message(body) == "VALIDATION_ERROR: bad (x is invalid)"
	assert hs.error_message(b"<html>oops") == "<html>oops"


def test_documents_named_are_the_event_own_and_its_associations():
	payload = json.loads(
		event("Contact", "C-1", {"associations": [{"doctype": "Customer", "name": "A"}]}).payload
	)
	assert hs.HubSpotTransport.documents_named(payload) == [("Contact", "C-1"), ("Customer", "A")]
	payload = json.loads(
		event("Opportunity", "O-1", {"associations": {"doctype": "Customer", "name": "A"}}).payload
	)
	assert hs.HubSpotTransport.documents_named(payload) == [("Opportunity", "O-1"), ("Customer", "A")]


def test_pulls_read_hubspot_lists_with_after_cursors(hub):
	from erp_connect.engine import pagination

	for i in range(250):
		hub.add("contacts", {"firstname": f"P{i}"})
	defaults = hs.HubSpotTransport.pull_defaults("Contact")
	spec = pagination.ListSpec(
		style=defaults["pagination_style"],
		page_size=defaults["page_size"],
		records_path=defaults["records_path"],
		next_path=defaults["next_path"],
		cursor_param=defaults["cursor_param"],
		size_param=defaults["size_param"],
		extra_query={"properties": "firstname"},
	)
	import requests

	request, seen, pages = pagination.first_page(spec, None), [], 0
	while request:
		response = requests.get(
			hub.url + defaults["list_path"],
			params=request["query"],
			headers={"Authorization": f"Bearer {TOKEN}"},
		)
		body = response.json()
		records = pagination.records_of(spec, body)
		seen += [r["id"] for r in records]
		pages += 1
		request = pagination.next_page(spec, request, body, {}, records, hub.url)
	assert pages == 3 and len(seen) == len(set(seen)) == 250


def test_a_deal_is_read_with_what_tells_whether_it_is_won():
	rules = [FieldRule("properties.dealname", "title")]
	assert hs.object_query("deals", rules)["properties"] == "amount,closedate,dealname,dealstage"
	assert hs.object_query("contacts", rules) == {"properties": "dealname"}
	assert hs.is_won({"properties": {"dealstage": "closedwon"}})
	assert not hs.is_won({"properties": {"dealstage": "closedlost"}})
