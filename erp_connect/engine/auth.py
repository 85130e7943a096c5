"""The request headers each connector auth type produces. Secrets come in already decrypted; this
module never logs or stores them."""

import base64
from collections.abc import Mapping

AUTH_NONE = "None"
AUTH_BEARER = "Bearer Token"
AUTH_API_KEY = "API Key Header"
AUTH_BASIC = "Basic"
AUTH_FRAPPE_TOKEN = "Frappe Token"
AUTH_OAUTH2 = "OAuth 2.0"

AUTH_TYPES = (AUTH_NONE, AUTH_BEARER, AUTH_API_KEY, AUTH_BASIC, AUTH_FRAPPE_TOKEN, AUTH_OAUTH2)

# The settings each auth type cannot work without (names of Connector fields)
REQUIRED_SETTINGS: Mapping[str, tuple[str, ...]] = {
	AUTH_NONE: (),
	AUTH_BEARER: ("bearer_token",),
	AUTH_API_KEY: ("api_key_header", "api_key"),
	AUTH_BASIC: ("username", "password"),
	AUTH_FRAPPE_TOKEN: ("api_key", "api_secret"),
	AUTH_OAUTH2: ("connected_app",),
}


def auth_headers(auth_type: str, settings: Mapping[str, str]) -> dict[str, str]:
	"""Headers for one request. OAuth 2.0 expects ``access_token`` already fetched (Frappe refreshes it)."""
	if auth_type == AUTH_NONE:
		return {}
	if auth_type == AUTH_BEARER:
		return {"Authorization": f"Bearer {settings['bearer_token']}"}
	if auth_type == AUTH_API_KEY:
		return {settings["api_key_header"]: settings["api_key"]}
	if auth_type == AUTH_BASIC:
		pair = f"{settings['username']}:{settings['password']}".encode()
		return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
	if auth_type == AUTH_FRAPPE_TOKEN:
		return {"Authorization": f"token {settings['api_key']}:{settings['api_secret']}"}
	if auth_type == AUTH_OAUTH2:
		return {"Authorization": f"Bearer {settings['access_token']}"}
	raise ValueError(f"unknown auth type {auth_type!r}")
