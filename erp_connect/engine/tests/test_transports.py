"""The transport seam: each kind of external system turns outbox events into requests and
outcomes, against a real HTTP server on 127.0.0.1."""

import json

import pytest

from erp_connect.engine import outbound, signing, transports
from erp_connect.engine.retry import Outcome
from erp_connect.engine.transports import Endpoint, OutboundEvent, Route
from erp_connect.testing.remote import RemoteSystem, Reply

SECRET = signing.generate_secret()


@pytest.fixture
def remote():
	with RemoteSystem() as server:
		yield server


def event(n: int, doctype: str = "Customer", doc_event: str = "on_update") -> OutboundEvent:
	event_id = outbound.new_event_id()
	ref = outbound.EventRef(event_id, doctype, f"DOC-{n}", doc_event, 1, "2026-12-01T10:00:00")
	return OutboundEvent(f"row-{n}", event_id, outbound.envelope(ref, {"id": f"DOC-{n}", "n": n}))


def endpoint(remote, **settings) -> Endpoint:
	return Endpoint(remote.url, timeout=2, allow_private=True, **settings)


def test_every_connector_type_has_one_transport_and_unknown_types_are_webhooks():
	assert transports.kind("Frappe Site") is transports.FrappeSiteTransport
	assert transports.kind("Webhook") is transports.WebhookTransport
	assert transports.kind(None) is transports.WebhookTransport
	assert not transports.kind("POS").calls_out
	# a mobile app's callers are the people signed in to it, and nothing is sent to it
	assert transports.kind("Mobile App").callers_are_people and not transports.kind("Mobile App").calls_out
	assert not any(kind.callers_are_people for name, kind in transports.KINDS.items() if name != "Mobile App")
	assert transports.kind("Frappe Site")(Endpoint("http://x")).batch_size(50) == 1
	assert transports.kind("Frappe Site").requests_per_send == 2  # PUT, then POST: leases cover both
	assert transports.kind("Webhook")(Endpoint("http://x")).batch_size(50) == 50


def test_a_webhook_event_is_one_signed_request_with_its_id(remote):
	sent = event(1)
	[result] = transports.WebhookTransport(endpoint(remote, signing_secret=SECRET)).send(
		Route("/hooks"), [sent]
	)
	assert (result.names, result.verdict.outcome, result.status_code) == (["row-1"], Outcome.DELIVERED, 200)
	[request] = remote.received("/hooks")
	assert request.headers["idempotency-key"] == sent.event_id
	assert signing.verify(SECRET, request.headers, request.body) == sent.event_id


def test_a_batch_is_one_request_and_its_outcome_covers_every_event(remote):
	remote.set_default("/hooks", Reply(503, headers={"Retry-After": "7"}))
	events = [event(n) for n in range(3)]
	[result] = transports.WebhookTransport(endpoint(remote)).send(Route("/hooks", batch_size=3), events)
	assert result.names == ["row-0", "row-1", "row-2"]
	assert (result.verdict.outcome, result.verdict.retry_after) == (Outcome.RETRY, 7)
	body = remote.received("/hooks")[0].json()
	assert [e["id"] for e in body["events"]] == [e.event_id for e in events]


def test_no_answer_is_a_retry_and_a_blocked_target_is_dead():
	closed = Endpoint("http://127.0.0.1:9", timeout=1, allow_private=True)
	[result] = transports.WebhookTransport(closed).send(Route("/hooks"), [event(1)])
	assert result.verdict.outcome is Outcome.RETRY
	private = Endpoint("http://127.0.0.1:9", timeout=1)  # private targets not allowed
	[result] = transports.WebhookTransport(private).send(Route("/hooks"), [event(1)])
	assert result.verdict.outcome is Outcome.DEAD


def test_another_frappe_site_updates_then_creates_and_deletes_once(remote):
	site = transports.FrappeSiteTransport(endpoint(remote))
	remote.script("/api/resource/Customer/DOC-1", Reply(404))
	[created] = site.send(Route(""), [event(1)])
	assert created.verdict.outcome is Outcome.DELIVERED
	put, post = remote.received()
	assert (put.method, post.method, post.path) == ("PUT", "POST", "/api/resource/Customer")
	assert json.loads(post.body)["name"] == "DOC-1"

	remote.reset()
	remote.set_default("*", Reply(404))
	[gone] = site.send(Route(""), [event(2, doc_event="on_trash")])
	assert (gone.verdict.outcome, gone.response) == (Outcome.DELIVERED, "already deleted there")


def test_urls_join_below_the_base_and_full_urls_stand():
	base = Endpoint("https://shop.example/api")
	assert base.url_for("/hooks") == "https://shop.example/api/hooks"
	assert base.url_for("https://other.example/x") == "https://other.example/x"
	assert base.url_for("") == "https://shop.example/api"


def test_a_kind_says_what_a_pull_rule_of_it_fixes_without_an_instance():
	assert transports.kind("Frappe Site").pull_defaults("Item")["list_path"] == "/api/resource/Item"
	assert transports.kind("REST API").pull_defaults("Item") == {}


def stock_event(data: dict) -> OutboundEvent:
	event_id = outbound.new_event_id()
	ref = outbound.EventRef(event_id, "Item", "SKU-1", "on_stock_change", 3, "2026-12-01T10:00:00")
	return OutboundEvent("row-1", event_id, outbound.envelope(ref, data))


def test_a_woocommerce_push_updates_the_product_the_event_names_with_the_mapped_fields(remote):
	remote.set_default("/wp-json/wc/v3/products/123", Reply(200, {"id": 123, "stock_quantity": 7}))
	transport = transports.kind("WooCommerce")(endpoint(remote, auth_headers={"Authorization": "Basic x"}))
	(result,) = transport.send(
		Route("/wp-json/wc/v3/products/{id}"), [stock_event({"id": 123, "stock_quantity": 7})]
	)
	assert result.verdict.outcome is Outcome.DELIVERED, result
	(request,) = remote.received()
	assert (request.method, request.path) == ("PUT", "/wp-json/wc/v3/products/123")
	assert request.json() == {"stock_quantity": 7}  # the product's own fields, no envelope
	assert request.headers["authorization"] == "Basic x"
	assert request.headers["idempotency-key"]  # the event id, as every push carries


def test_a_woocommerce_push_without_a_product_id_or_to_a_missing_product_is_dead(remote):
	remote.set_default(
		"/wp-json/wc/v3/products/9", Reply(404, {"code": "woocommerce_rest_product_invalid_id"})
	)
	transport = transports.kind("WooCommerce")(endpoint(remote))
	route = Route("/wp-json/wc/v3/products/{id}")
	(no_id,) = transport.send(route, [stock_event({"stock_quantity": 1})])
	(missing,) = transport.send(route, [stock_event({"id": 9, "stock_quantity": 1})])
	assert no_id.verdict.outcome is Outcome.DEAD and "product id" in no_id.verdict.reason
	assert missing.verdict.outcome is Outcome.DEAD and missing.status_code == 404
	assert len(remote.received()) == 1
