"""The kinds of external system a connector can be. Adding a kind is one module with a Transport
and one line here; nothing else branches on the connector's type."""

from erp_connect.engine.transports.base import Endpoint, OutboundEvent, Route, SendResult, Transport
from erp_connect.engine.transports.easypost import EasyPostTransport
from erp_connect.engine.transports.frappe_site import FrappeSiteTransport
from erp_connect.engine.transports.hubspot import HubSpotTransport
from erp_connect.engine.transports.mqtt import MqttTransport
from erp_connect.engine.transports.nats_jetstream import NatsJetStreamTransport
from erp_connect.engine.transports.payments import RazorpayTransport, StripeTransport
from erp_connect.engine.transports.postgres_replica import PostgresReplicaTransport
from erp_connect.engine.transports.rabbitmq import RabbitMqTransport
from erp_connect.engine.transports.shopify import ShopifyTransport
from erp_connect.engine.transports.webhook import InboundOnly, MobileApp, RestApiTransport, WebhookTransport
from erp_connect.engine.transports.woocommerce import WooCommerceTransport

KINDS: dict[str, type[Transport]] = {
	"Webhook": WebhookTransport,
	"REST API": RestApiTransport,
	"Frappe Site": FrappeSiteTransport,
	"WooCommerce": WooCommerceTransport,
	"Shopify": ShopifyTransport,
	"POS": InboundOnly,
	"Mobile App": MobileApp,
	"NATS JetStream": NatsJetStreamTransport,
	"RabbitMQ": RabbitMqTransport,
	"MQTT": MqttTransport,
	"PostgreSQL": PostgresReplicaTransport,
	"Stripe": StripeTransport,
	"Razorpay": RazorpayTransport,
	"EasyPost": EasyPostTransport,
	"HubSpot": HubSpotTransport,
}


def kind(connector_type: str | None) -> type[Transport]:
	"""The transport of a connector type (an unknown or empty type: a webhook receiver)."""
	return KINDS.get(connector_type or "", WebhookTransport)
