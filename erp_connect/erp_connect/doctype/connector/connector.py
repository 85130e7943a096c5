# Copyright (c) 2026, erp_connect developers
# For license information, please see license.txt

import frappe
from frappe import _
from frappe.model.document import Document

from erp_connect.engine import auth, http, receive_schemes, signing, transports
from erp_connect.engine.retry import classify_exception
from erp_connect.engine.transports import postgres_replica
from erp_connect.engine.transports.base import join_url
from erp_connect.services.common.doctypes import sync_refusal
from erp_connect.services.common.users import writer_problem
from erp_connect.services.inbound import access
from erp_connect.services.push.outbox import clear_rules_cache

DEFAULT_IN_FLIGHT = 8  # requests a drain sends at once, unless the connector says otherwise
MAX_IN_FLIGHT = 64
PAYMENT_ENTRY = "Payment Entry"
SECRET_FIELDS = ("bearer_token", "api_key", "api_secret", "password", "signing_secret")


class Connector(Document):
	# begin: auto-generated types
	# This code is auto-generated. Do not modify anything in this block.

	from typing import TYPE_CHECKING

	if TYPE_CHECKING:
		from frappe.types import DF

		from erp_connect.erp_connect.doctype.connector_access.connector_access import ConnectorAccess

		allow_private_network: DF.Check
		allowed_doctypes: DF.Table[ConnectorAccess]
		api_key: DF.Password | None
		api_key_header: DF.Data | None
		api_secret: DF.Password | None
		api_user: DF.Link | None
		auth_type: DF.Literal["None", "Bearer Token", "API Key Header", "Basic", "Frappe Token", "OAuth 2.0"]
		base_url: DF.Data
		bearer_token: DF.Password | None
		connected_app: DF.Link | None
		connector_name: DF.Data
		connector_type: DF.Literal[
			"Webhook",
			"REST API",
			"Frappe Site",
			"WooCommerce",
			"Shopify",
			"POS",
			"Mobile App",
			"NATS JetStream",
			"RabbitMQ",
			"MQTT",
			"PostgreSQL",
			"Stripe",
			"Razorpay",
			"EasyPost",
			"HubSpot",
		]
		deal_item: DF.Link | None
		dry_run: DF.Check
		enabled: DF.Check
		failing_since: DF.Datetime | None
		fee_account: DF.Link | None
		fee_cost_center: DF.Link | None
		max_in_flight: DF.Int
		member_role: DF.Link | None
		mode_of_payment: DF.Link | None
		oauth_client: DF.Link | None
		password: DF.Password | None
		paused: DF.Check
		payment_account: DF.Link | None
		rate_limit_per_minute: DF.Int
		receive_doctype: DF.Link | None
		receive_id_header: DF.Data | None
		receive_scheme: DF.Literal[
			"Standard Webhooks", "HMAC-SHA256 Header", "Stripe", "Razorpay", "EasyPost HMAC", "HubSpot v3"
		]
		receive_secret: DF.Password | None
		receive_signature_header: DF.Data | None
		replica_schema: DF.Data | None
		requests_per_minute: DF.Int
		signing_secret: DF.Password | None
		timeout_seconds: DF.Float
		username: DF.Data | None
		won_deals_become: DF.Literal["", "Sales Order", "Quotation"]
	# end: auto-generated types

	def validate(self):
		self.validate_base_url()
		self.validate_replica_schema()
		self.validate_timeout()
		self.validate_max_in_flight()
		self.validate_auth_settings()
		self.validate_signing_secret()
		self.validate_receiving()
		self.validate_api_user()
		self.validate_members()
		self.validate_allowed_doctypes()

	def on_update(self):
		clear_rules_cache()

	def on_trash(self):
		clear_rules_cache()

	def validate_base_url(self):
		self.base_url = (self.base_url or "").strip().rstrip("/")
		problem = transports.kind(self.connector_type).url_problem(self.base_url)
		if problem:
			frappe.throw(_("Base URL is not valid: {0}").format(problem), title=_("Invalid Base URL"))

	def validate_replica_schema(self):
		self.replica_schema = (self.replica_schema or "").strip() or postgres_replica.DEFAULT_SCHEMA
		problem = postgres_replica.schema_problem(self.replica_schema)
		if problem:
			frappe.throw(_("Replica Schema is not valid: {0}").format(problem))

	def validate_timeout(self):
		if not self.timeout_seconds:
			self.timeout_seconds = http.DEFAULT_TIMEOUT_SECONDS
		if not 0 < self.timeout_seconds <= 300:
			frappe.throw(_("Timeout must be between 0 and 300 seconds"))

	def validate_max_in_flight(self):
		if not self.max_in_flight:
			self.max_in_flight = DEFAULT_IN_FLIGHT
		if not 1 <= self.max_in_flight <= MAX_IN_FLIGHT:
			frappe.throw(_("Requests in Flight must be between 1 and {0}").format(MAX_IN_FLIGHT))

	def validate_auth_settings(self):
		missing = [f for f in auth.REQUIRED_SETTINGS[self.auth_type] if not self.get(f)]
		if missing:
			labels = ", ".join(_(self.meta.get_label(f)) for f in missing)
			frappe.throw(
				_("Auth type {0} needs: {1}").format(_(self.auth_type), labels), title=_("Missing Secret")
			)

	def validate_signing_secret(self):
		value = self.signing_secret
		if not value or is_masked(value):
			return  # unchanged since it was validated and stored
		try:
			signing.decode_secret(value)
		except ValueError as e:
			frappe.throw(_("Signing Secret is not valid: {0}").format(str(e)), title=_("Invalid Secret"))

	def onload(self):
		from erp_connect.engine.presets import PRESETS

		self.set_onload("presets", list(PRESETS))  # the Guided Setup choices

	@frappe.whitelist()
	def test_connection(self) -> dict:
		"""Send a signed ping (POST for webhook receivers, GET for APIs) and report what came back."""
		self.check_permission("write")
		transport = self.transport()
		try:
			response = transport.ping()
		except Exception as e:
			return {"ok": False, "message": classify_exception(e).reason}
		finally:
			transport.close()
		ok = 200 <= response.status < 300
		return {
			"ok": ok,
			"status": response.status,
			"elapsed_ms": round(response.elapsed * 1000),
			"message": _("Reached {0}: HTTP {1}").format(self.base_url, response.status)
			if self.base_url.startswith(("http://", "https://"))
			else _("Reached {0}: {1}").format(
				http.shown_url(self.base_url), response.body.decode("utf-8", "replace")
			),
		}

	@frappe.whitelist()
	def apply_preset(self, preset: str) -> dict:
		"""Guided setup: create the rules of a common case (webhook receiver, REST API, another
		ERPNext site, WooCommerce, Shopify) for this connector."""
		self.check_permission("write")
		from erp_connect.services.ops.setup import apply_preset

		return apply_preset(self.name, preset)

	@frappe.whitelist()
	def health(self) -> dict:
		"""The status banner: healthy / degraded / failing / disabled, why, and the counts."""
		self.check_permission("read")
		from erp_connect.services.ops.health import health

		return health(self.name)

	@frappe.whitelist()
	def pause(self) -> None:
		"""Hold deliveries; events are still recorded and go out on Resume."""
		self.check_permission("write")
		self.db_set("paused", 1)

	@frappe.whitelist()
	def resume(self) -> None:
		self.check_permission("write")
		self.db_set("paused", 0)
		from erp_connect.services.push.wake import wake_after_commit

		wake_after_commit(self.name)

	@frappe.whitelist()
	def recent_activity(self, limit: int = 10) -> dict:
		"""The latest events, pull runs and received webhooks of this connector."""
		self.check_permission("read")
		limit = min(int(limit), 50)
		return {
			"events": frappe.get_all(
				"Sync Event",
				{"connector": self.name},
				[
					"name",
					"status",
					"reference_doctype",
					"reference_name",
					"doc_event",
					"last_status_code",
					"modified",
				],
				order_by="name desc",
				limit=limit,
			),
			"runs": frappe.get_all(
				"Sync Run",
				{"connector": self.name},
				["name", "status", "pull_rule", "created", "updated", "failed", "started_at"],
				order_by="started_at desc",
				limit=limit,
			),
			"inbound": frappe.get_all(
				"Inbound Request",
				{"connector": self.name},
				["name", "status", "creation"],
				order_by="creation desc",
				limit=limit,
			),
		}

	def validate_api_user(self):
		"""Whatever reaches ERPNext through this connector is written as its API user: never
		Administrator or a System Manager (empty is fine: then nothing is written)."""
		problem = self.api_user and writer_problem(self.api_user)
		if problem:
			frappe.throw(problem, title=_("API User"))

	def validate_members(self):
		"""A Mobile App's callers are the people holding its Member Role, signed in through its
		OAuth Client; it has no API User, and nothing is written as one for it."""
		if not transports.kind(self.connector_type).callers_are_people:
			self.oauth_client = self.member_role = None
			return
		if not self.oauth_client or not self.member_role:
			frappe.throw(_("A Mobile App connector needs an OAuth Client and a Member Role"))
		problem = access.member_role_problem(self.member_role)
		if problem:
			frappe.throw(problem, title=_("Member Role"))
		for field, label in (("api_user", "API User"), ("receive_doctype", "Records Become")):
			if self.get(field):
				frappe.throw(
					_("A Mobile App connector has no {0}: its people call the API as themselves").format(
						_(label)
					)
				)

	def validate_allowed_doctypes(self):
		for row in self.allowed_doctypes:
			refused = sync_refusal(row.reference_doctype or "")
			if refused:
				frappe.throw(_("Allowed DocTypes row {0}: {1}").format(row.idx, refused))

	def validate_receiving(self):
		if not self.receive_doctype:
			return
		kind = transports.kind(self.connector_type)
		if kind.receives == "payments":
			self.validate_payment_receiving(kind)
		elif kind.receives == "crm events" and self.receive_scheme != kind.receive_scheme:
			frappe.throw(
				_("A {0} connector's webhooks are signed the {1} way: set Signature Scheme to {1}").format(
					_(self.connector_type), kind.receive_scheme
				)
			)
		scheme = receive_schemes.scheme(self.receive_scheme)
		missing = [
			label
			for field, label in (("api_user", "API User"), ("receive_secret", "Receive Secret"))
			if not self.get(field)
		]
		missing += scheme.missing_settings(self.scheme_settings())
		if missing:
			frappe.throw(_("Receiving webhooks needs: {0}").format(", ".join(_(m) for m in missing)))
		refused = access.write_refusal(self, self.receive_doctype)  # what its deliveries would write
		if refused:
			frappe.throw(refused, title=_("Receiving Webhooks"))
		secret = self.receive_secret
		problem = not is_masked(secret) and scheme.secret_problem(secret)
		if problem:
			frappe.throw(_("Receive Secret is not valid: {0}").format(problem))

	def validate_payment_receiving(self, kind):
		"""A payment platform's deliveries become Payment Entries, verified its own way."""
		if self.receive_doctype != PAYMENT_ENTRY:
			frappe.throw(
				_("A {0} connector's webhooks become {1}: set Records Become to {1}").format(
					_(self.connector_type), _(PAYMENT_ENTRY)
				)
			)
		if self.receive_scheme != kind.receive_scheme:
			frappe.throw(
				_("A {0} connector's webhooks are signed the {1} way: set Signature Scheme to {1}").format(
					_(self.connector_type), kind.receive_scheme
				)
			)

	def scheme_settings(self) -> dict:
		return {"signature_header": self.receive_signature_header, "id_header": self.receive_id_header}

	# -- used by the delivery and pull services ---------------------------------------------
	def secret(self, fieldname: str) -> str | None:
		return self.get_password(fieldname, raise_exception=False) if self.get(fieldname) else None

	def auth_headers(self) -> dict[str, str]:
		settings = {f: self.secret(f) for f in SECRET_FIELDS}
		settings.update(api_key_header=self.api_key_header, username=self.username)
		if self.auth_type == auth.AUTH_OAUTH2:
			settings["access_token"] = self.oauth_access_token()
		return auth.auth_headers(self.auth_type, settings)

	def oauth_access_token(self) -> str:
		# Connected App keeps one token per user; the connector's owner authorizes it once in Desk
		token = frappe.get_doc("Connected App", self.connected_app).get_active_token(self.owner)
		if not token:
			frappe.throw(
				_("Connected App {0} has no token for {1}: authorize it first").format(
					self.connected_app, self.owner
				)
			)
		return token.get_password("access_token")

	def url_for(self, path: str | None) -> str:
		"""The absolute URL of a target path (a full URL is taken as it is)."""
		return join_url(self.base_url, path)

	def endpoint(self) -> transports.Endpoint:
		"""Where the system is and how to reach it, secrets decrypted, for its transport."""
		return transports.Endpoint(
			self.base_url,
			self.timeout_seconds or http.DEFAULT_TIMEOUT_SECONDS,
			bool(self.allow_private_network),
			self.auth_headers(),
			self.secret("signing_secret"),
		)

	def transport(self) -> transports.Transport:
		return transports.kind(self.connector_type)(self.endpoint())


def is_masked(value: str) -> bool:
	"""Frappe shows a stored Password field as asterisks."""
	return bool(value) and set(value) == {"*"}
