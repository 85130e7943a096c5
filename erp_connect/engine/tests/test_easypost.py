"""The EasyPost carrier kind: its webhook signature, the shipment it builds from a payload, and one
shipment per event against the fake carrier (a real HTTP server on 127.0.0.1), whatever fails."""

import base64
import hashlib
import hmac
import json
import unicodedata

import pytest

from erp_connect.engine import outbound, signing, transports
from erp_connect.engine.retry import Outcome
from erp_connect.engine.transports import Endpoint, OutboundEvent, Route
from erp_connect.engine.transports import easypost as ep
from erp_connect.testing.carrier import FakeCarrier

KEY = "EZTK_unit_key"
ADDRESS_TO = {
	"name": "Ann Lee",
	"street1": "1 Main St",
	"city": "Memphis",
	"state": "TN",
	"zip": "38103",
	"country": "us",
}
ADDRESS_FROM = {
	"company": "Acme",
	"street1": "9 Dock Rd",
	"city": "Austin",
	"state": "TX",
	"zip": "78701",
	"country": "US",
}
ITEMS = [
	{"item_code": "A", "qty": 2, "weight_per_unit": 0.5, "weight_uom": "Kg"},
	{"item_code": "B", "qty": 3, "weight_per_unit": 4, "weight_uom": "Ounce"},
]


@pytest.fixture
def carrier():
	with FakeCarrier(api_key=KEY) as server:
		yield server


def transport(carrier, timeout=2.0):
	auth = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:ignored".encode()).decode()}
	return transports.kind("EasyPost")(
		Endpoint(carrier.url, timeout=timeout, allow_private=True, auth_headers=auth)
	)


def event(data=None) -> OutboundEvent:
	event_id = outbound.new_event_id()
	ref = outbound.EventRef(event_id, "Delivery Note", "DN-1", "on_submit", 1, "2026-12-01T10:00:00")
	payload = (
		data if data is not None else {"to_address": ADDRESS_TO, "from_address": ADDRESS_FROM, "items": ITEMS}
	)
	return OutboundEvent("row-1", event_id, outbound.envelope(ref, payload))


ROUTE = Route("/v2/shipments")


# -- the webhook signature ----------------------------------------------------------------------
def test_the_signature_is_the_hex_hmac_of_the_raw_body_with_the_nfkd_normalized_secret():
	body = b'{"id":"evt_1","description":"tracker.updated"}'
	composed, decomposed = "caf\u00e9-secret", "cafe\u0301-secret"
	expected = hmac.new(unicodedata.normalize("NFKD", composed).encode(), body, hashlib.sha256).hexdigest()
	assert signing.easypost_signature(composed, body) == "hmac-sha256-hex=" + expected
	assert signing.easypost_signature(decomposed, body) == signing.easypost_signature(composed, body)
	signing.verify_easypost(composed, "hmac-sha256-hex=" + expected, body)
	signing.verify_easypost(decomposed, "hmac-sha256-hex=" + expected, body)


@pytest.mark.parametrize(
	"secret, header, body",
	[
		("other", None, b"{}"),  # wrong secret
		("s", "hmac-sha256-hex=" + "0" * 64, b"{}"),
		("s", None, b"{} "),  # a changed body
		("s", "", b"{}"),  # missing
		("s", "sha256=abc", b"{}"),
	],
)
def test_a_wrong_missing_or_changed_signature_is_refused(secret, header, body):
	good = signing.easypost_signature("s", b"{}")
	with pytest.raises(signing.WebhookVerificationError):
		signing.verify_easypost(secret if header is None else "s", good if header is None else header, body)
	if header is None and secret == "other":
		with pytest.raises(signing.WebhookVerificationError):
			signing.verify_easypost("", good, b"{}")


# -- building the shipment ------------------------------------------------------------------------
def test_the_parcel_weighs_the_items_in_ounces_and_the_addresses_are_easyposts():
	request = ep.shipment_request(
		{"to_address": ADDRESS_TO, "from_address": ADDRESS_FROM, "items": ITEMS}, "evt_x"
	)
	shipment = request["shipment"]
	assert shipment["reference"] == "evt_x"
	assert shipment["parcel"] == {"weight": 47.3}  # 2 x 0.5 kg = 35.27 oz, + 3 x 4 oz
	assert shipment["to_address"]["country"] == "US"
	assert shipment["from_address"] == ADDRESS_FROM
	assert ep.ounces(1, "lb") == 16 and ep.ounces(1000, "Gram") == ep.ounces(1, "kg")


def test_missing_weights_and_address_parts_are_all_named_at_once():
	with pytest.raises(ep.ShipmentProblem) as caught:
		ep.shipment_request(
			{
				"to_address": {"street1": "1 Main St"},
				"from_address": ADDRESS_FROM,
				"items": [
					{"item_code": "A", "qty": 1},
					{"item_code": "B", "qty": 1, "weight_per_unit": 2, "weight_uom": "stone"},
				],
			},
			"evt_x",
		)
	text = str(caught.value)
	assert "to_address (the customer's shipping address) has no city, zip, country" in text
	assert "item A has no weight" in text and "item B: unknown weight unit 'stone'" in text


def test_the_cheapest_rate_of_the_carrier_and_service_asked_for_is_bought():
	shipment = {
		"rates": [
			{"id": "r1", "carrier": "UPS", "service": "Ground", "rate": "9.10"},
			{"id": "r2", "carrier": "USPS", "service": "Priority", "rate": "7.58"},
		]
	}
	assert ep.choose_rate(shipment)["id"] == "r2"
	assert ep.choose_rate(shipment, "ups")["id"] == "r1"
	assert ep.choose_rate(shipment, "FedEx") is None


def test_easyposts_error_answers_read_as_one_line():
	body = json.dumps(
		{
			"error": {
				"code": "SHIPMENT.INVALID_PARAMS",
				"message": "Unable to create shipment.",
				"errors": [{"field": "to_address.zip", "message": "cannot be blank"}],
			}
		}
	).encode()
	assert (
		ep.error_message(body)
		== "SHIPMENT.INVALID_PARAMS: Unable to create shipment. (to_address.zip: cannot be blank)"
	)
	assert ep.error_message(b"<html>oops") == "<html>oops"


def test_the_api_key_goes_as_the_basic_username_without_a_password():
	headers = ep.basic_key_only(
		{"Authorization": "Basic " + base64.b64encode(b"KEY:secret").decode(), "X": "1"}
	)
	assert base64.b64decode(headers["Authorization"][6:]) == b"KEY:" and headers["X"] == "1"


# -- one shipment per event against the fake carrier ------------------------------------------
def test_an_event_creates_one_shipment_buys_the_cheapest_rate_and_hands_back_the_label(carrier):
	e = event()
	[result] = transport(carrier).send(ROUTE, [e])
	assert result.verdict.outcome is Outcome.DELIVERED, result.verdict.reason
	[shipment] = carrier.shipments.values()
	assert shipment["reference"] == e.event_id and shipment["parcel"]["weight"] == 47.3
	assert result.write_back == {
		ep.SHIPMENT_ID: shipment["id"],
		ep.TRACKING_NUMBER: shipment["tracking_code"],
		ep.LABEL_URL: shipment["postage_label"]["label_url"],
		ep.CARRIER: "USPS Priority",
	}
	# sent again (a retry after the answer was lost): the same shipment, nothing created or bought
	[again] = transport(carrier).send(ROUTE, [e])
	assert again.write_back == result.write_back
	assert len(carrier.shipments) == 1 and carrier.bought == 1


def test_a_500_is_retried_and_the_retry_creates_only_one_shipment(carrier):
	e = event()
	carrier.fail("create", 500)
	[first] = transport(carrier).send(ROUTE, [e])
	assert first.verdict.outcome is Outcome.RETRY and first.status_code == 500
	[second] = transport(carrier).send(ROUTE, [e])
	assert second.verdict.outcome is Outcome.DELIVERED
	assert len(carrier.shipments) == 1


@pytest.mark.parametrize("operation", ["create", "buy"])
def test_a_lost_answer_after_the_carrier_did_the_work_still_leaves_one_shipment(carrier, operation):
	e = event()
	carrier.lose_answer(operation, delay=1.5)
	[first] = transport(carrier, timeout=0.5).send(ROUTE, [e])
	assert first.verdict.outcome is Outcome.RETRY and "timeout" in first.verdict.reason
	[second] = transport(carrier).send(ROUTE, [e])
	assert second.verdict.outcome is Outcome.DELIVERED, second.verdict.reason
	assert len(carrier.shipments) == 1 and carrier.bought == 1
	assert second.write_back[ep.TRACKING_NUMBER] == carrier.by_reference(e.event_id)["tracking_code"]


def test_a_422_is_dead_with_the_carriers_message(carrier):
	carrier.fail(
		"create",
		422,
		{"error": {"code": "ADDRESS.VERIFY.FAILURE", "message": "Address not found", "errors": []}},
	)
	[result] = transport(carrier).send(ROUTE, [event()])
	assert result.verdict.outcome is Outcome.DEAD
	assert "ADDRESS.VERIFY.FAILURE: Address not found" in result.verdict.reason
	assert not carrier.shipments


def test_a_document_that_cannot_ship_is_dead_without_calling_the_carrier(carrier):
	[result] = transport(carrier).send(
		ROUTE,
		[
			event(
				{
					"to_address": ADDRESS_TO,
					"from_address": ADDRESS_FROM,
					"items": [{"item_code": "A", "qty": 1}],
				}
			)
		],
	)
	assert result.verdict.outcome is Outcome.DEAD and "item A has no weight" in result.verdict.reason
	assert carrier.requests == []


def test_a_wrong_api_key_is_dead(carrier):
	auth = {"Authorization": "Basic " + base64.b64encode(b"wrong:").decode()}
	t = transports.kind("EasyPost")(Endpoint(carrier.url, timeout=2, allow_private=True, auth_headers=auth))
	[result] = t.send(ROUTE, [event()])
	assert result.verdict.outcome is Outcome.DEAD and "APIKEY.REQUIRED" in result.verdict.reason
	assert t.ping().status == 401 and transport(carrier).ping().status == 200


def test_easypost_is_one_kind_with_one_document_per_request():
	assert transports.kind("EasyPost") is ep.EasyPostTransport
	assert transports.kind("EasyPost")(Endpoint("http://x")).batch_size(50) == 1


def test_the_easypost_receive_scheme_takes_the_signed_events_id_as_its_delivery_id():
	from erp_connect.engine import receive_schemes

	scheme = receive_schemes.scheme("EasyPost HMAC")
	body = json.dumps({"id": "evt_42", "description": "tracker.updated", "result": {}}).encode()
	headers = {"x-hmac-signature": signing.easypost_signature("s3cret", body)}
	assert scheme.verify("s3cret", headers, body, {}) == "evt_42"
	assert scheme.signs_delivery_id  # the id is inside the signed body: a replay is the same id
	with pytest.raises(signing.WebhookVerificationError):
		scheme.verify("other", headers, body, {})
	unsigned_id = json.dumps({"description": "tracker.updated"}).encode()
	with pytest.raises(signing.WebhookVerificationError, match="no event id"):
		scheme.verify(
			"s3cret", {"x-hmac-signature": signing.easypost_signature("s3cret", unsigned_id)}, unsigned_id, {}
		)


def test_a_slow_answer_within_the_timeout_is_one_shipment_and_the_lease_covers_three_requests(carrier):
	carrier.lose_answer("create", delay=0.5)  # slow, but within the 2 s timeout
	[result] = transport(carrier).send(ROUTE, [event()])
	assert result.verdict.outcome is Outcome.DELIVERED
	assert len(carrier.shipments) == 1 and carrier.bought == 1
	assert ep.EasyPostTransport.requests_per_send == 3  # a lookup, a create and a buy, one after another
