"""The OpenAPI 3 description of API v1, served at /api/method/erp_connect.api.v1.openapi."""

BASE = "/api/method/erp_connect.api.v1"

_RESULT = {
	"type": "object",
	"properties": {
		"index": {"type": "integer"},
		"external_id": {"type": "string", "nullable": True},
		"status": {"type": "string", "enum": ["created", "updated", "unchanged", "cancelled", "error"]},
		"name": {"type": "string", "description": "the ERPNext document"},
		"error": {"type": "string", "description": "what to fix, when status is error"},
	},
}
_ERROR = {
	"description": "refused; the body says why",
	"content": {"application/json": {"schema": {"type": "object"}}},
}


def document() -> dict:
	connector = {"name": "connector", "in": "query", "required": True, "schema": {"type": "string"}}
	return {
		"openapi": "3.0.3",
		"info": {
			"title": "erp_connect API",
			"version": "1",
			"description": "Write into and read from ERPNext on behalf of one connector. Authenticate with "
			"`Authorization: token <api_key>:<api_secret>` of the connector's API user; for a Mobile App "
			"connector, `Authorization: Bearer <access_token>` of a person signed in through its OAuth "
			"Client (changes and upsert only, with that person's permissions).",
		},
		"components": {
			"securitySchemes": {"frappeToken": {"type": "apiKey", "in": "header", "name": "Authorization"}},
			"schemas": {"UpsertResult": _RESULT},
		},
		"security": [{"frappeToken": []}],
		"paths": {
			f"{BASE}.upsert": {
				"post": {
					"summary": "Create or update one document per record, matched by external id",
					"parameters": [
						{
							"name": "Idempotency-Key",
							"in": "header",
							"schema": {"type": "string", "maxLength": 140},
							"description": "replays the first response for 24 h; a different body with the same key is refused (422)",
						}
					],
					"requestBody": {
						"required": True,
						"content": {
							"application/json": {
								"schema": {
									"type": "object",
									"required": ["connector", "doctype", "records"],
									"properties": {
										"connector": {"type": "string"},
										"doctype": {"type": "string"},
										"records": {
											"type": "array",
											"maxItems": 1000,
											"items": {"type": "object"},
										},
										"atomic": {"type": "boolean", "default": False},
										"action": {
											"type": "string",
											"enum": ["save", "submit", "cancel"],
											"default": "save",
										},
									},
								}
							}
						},
					},
					"responses": {
						"200": {
							"description": "per-record results and counts",
							"content": {
								"application/json": {
									"schema": {
										"type": "object",
										"properties": {
											"message": {
												"type": "object",
												"properties": {
													"results": {
														"type": "array",
														"items": {
															"$ref": "#/components/schemas/UpsertResult"
														},
													},
													**{
														k: {"type": "integer"}
														for k in (
															"created",
															"updated",
															"unchanged",
															"cancelled",
															"error",
														)
													},
												},
											}
										},
									}
								}
							},
						},
						**{code: _ERROR for code in ("400", "403", "413", "422", "429")},
					},
				}
			},
			f"{BASE}.changes": {
				"get": {
					"summary": "What changed since a cursor: records, deletions and cancellations",
					"parameters": [
						connector,
						{"name": "doctype", "in": "query", "required": True, "schema": {"type": "string"}},
						{
							"name": "cursor",
							"in": "query",
							"schema": {"type": "string"},
							"description": "as returned by the previous call",
						},
						{
							"name": "limit",
							"in": "query",
							"schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
						},
					],
					"responses": {
						"200": {"description": "records, deleted, cursor, has_more, resync"},
						**{code: _ERROR for code in ("400", "403", "429")},
					},
				}
			},
			f"{BASE}.status": {
				"get": {
					"summary": "The connector's own view: pending, retrying and dead events, last delivery",
					"parameters": [connector],
					"responses": {"200": {"description": "status"}, "403": _ERROR},
				}
			},
			f"{BASE}.receive": {
				"post": {
					"summary": "A signed webhook from a third party (no API key)",
					"security": [],
					"parameters": [connector],
					"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
					"responses": {
						"200": {"description": "received, or duplicate (already received)"},
						**{code: _ERROR for code in ("401", "404", "413", "429")},
					},
				}
			},
		},
	}
