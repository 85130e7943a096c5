import base64

import pytest

from erp_connect.engine import auth


def test_each_auth_type_builds_its_header():
	assert auth.auth_headers("None", {}) == {}
	assert auth.auth_headers("Bearer Token", {"bearer_token": "t0k"}) == {"Authorization": "Bearer t0k"}
	assert auth.auth_headers("API Key Header", {"api_key_header": "X-Api-Key", "api_key": "k"}) == {
		"X-Api-Key": "k"
	}
	basic = auth.auth_headers("Basic", {"username": "ann", "password": "p:w"})["Authorization"]
	assert base64.b64decode(basic.removeprefix("Basic ")) == b"ann:p:w"
	frappe_token = auth.auth_headers("Frappe Token", {"api_key": "key", "api_secret": "sec"})
	assert frappe_token == {"Authorization": "token key:sec"}
	assert auth.auth_headers("OAuth 2.0", {"access_token": "at"}) == {"Authorization": "Bearer at"}


def test_every_auth_type_declares_its_required_settings():
	assert set(auth.REQUIRED_SETTINGS) == set(auth.AUTH_TYPES)


def test_unknown_auth_type_is_an_error():
	with pytest.raises(ValueError, match="unknown auth type"):
		auth.auth_headers("Magic", {})
