import socket
import time

import pytest
import requests

from erp_connect.engine import http
from erp_connect.engine.http import BlockedTargetError
from erp_connect.testing.remote import RemoteSystem, Reply


@pytest.fixture
def remote():
	with RemoteSystem() as server:
		yield server


@pytest.mark.parametrize(
	"url, problem",
	[
		("", "empty"),
		("ftp://example.com", "http:// or https://"),
		("example.com/hook", "http:// or https://"),
		("https://", "no host"),
		("https://exa mple.com", "white space"),
		("https://example.com:99999/", "invalid port"),
	],
)
def test_malformed_urls_are_explained(url, problem):
	assert problem in http.validate_url(url)


def test_good_urls_pass():
	assert http.validate_url("https://shop.example.com/wp-json/wc/v3") == ""
	assert http.validate_url("http://127.0.0.1:8000/hook") == ""


@pytest.mark.parametrize(
	"host", ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.1", "169.254.169.254", "[::1]"]
)
def test_private_targets_are_blocked_unless_allowed(host):
	with pytest.raises(BlockedTargetError, match="non-public"):
		http.check_target(f"http://{host}/hook")
	http.check_target(f"http://{host}/hook", allow_private=True)


def test_send_posts_with_timeout_and_user_agent(remote):
	response = http.send(
		"POST", remote.url + "/hook", body=b'{"a": 1}', headers={"X-Test": "1"}, allow_private=True
	)
	assert response.status == 200
	[request] = remote.received("/hook")
	assert request.body == b'{"a": 1}'
	assert request.headers["x-test"] == "1"
	assert request.headers["user-agent"].startswith("erp_connect/")


def test_send_does_not_follow_redirects(remote):
	remote.script("/hook", Reply(302, headers={"Location": "http://169.254.169.254/latest/meta-data"}))
	assert http.send("POST", remote.url + "/hook", allow_private=True).status == 302
	assert len(remote.received()) == 1


def test_slow_receivers_time_out(remote):
	remote.script("/slow", Reply(200, delay=1.0))
	started = time.monotonic()
	with pytest.raises(requests.exceptions.Timeout):
		http.send("POST", remote.url + "/slow", timeout=0.2, allow_private=True)
	assert time.monotonic() - started < 0.9


def test_refuses_private_target_before_connecting(remote):
	with pytest.raises(BlockedTargetError):
		http.send("POST", remote.url + "/hook")
	assert remote.received() == []


@pytest.mark.parametrize("host", ["a..b", "x" * 64 + ".example.com"])
@pytest.mark.parametrize("allow_private", [False, True])
def test_a_host_that_cannot_be_resolved_as_written_is_refused_clearly(host, allow_private):
	with pytest.raises(BlockedTargetError, match=f"cannot resolve host {host}"):
		http.check_target(f"http://{host}/hook", allow_private=allow_private)
	with pytest.raises(BlockedTargetError, match="cannot resolve host"):
		http.send("POST", f"http://{host}/hook", allow_private=allow_private, timeout=1)


def test_a_dns_answer_that_changes_after_the_check_never_reaches_the_internal_address(remote, monkeypatch):
	# DNS rebinding: the name is public when checked and internal when connected to
	real_getaddrinfo = socket.getaddrinfo
	answers = []

	def rebinding(host, *args, **kwargs):
		if host != "rebind.example":
			return real_getaddrinfo(host, *args, **kwargs)
		answers.append(host)
		address = "93.184.216.34" if len(answers) == 1 else "127.0.0.1"
		return real_getaddrinfo(address, *args, **kwargs)

	monkeypatch.setattr(socket, "getaddrinfo", rebinding)
	url = remote.url.replace("127.0.0.1", "rebind.example") + "/internal"
	with pytest.raises(BlockedTargetError, match=r"non-public address 127\.0\.0\.1"):
		http.send("GET", url, timeout=2, session=requests.Session())
	assert remote.received("/internal") == []


def test_a_connection_is_made_to_the_address_that_was_checked(remote):
	response = http.send("GET", remote.url + "/ok", timeout=2, allow_private=True, session=requests.Session())
	assert response.status == 200
	with pytest.raises(BlockedTargetError):
		http.send("GET", remote.url + "/ok", timeout=2, session=requests.Session())


def test_a_url_shown_to_a_person_hides_its_password():
	assert http.shown_url("nats://app:s3cret@broker:4222") == "nats://app:***@broker:4222"
	assert http.shown_url("amqp://guest:p%40ss@127.0.0.1:5672/%2F") == "amqp://guest:***@127.0.0.1:5672/%2F"
	assert http.shown_url("https://api.example.com/v1") == "https://api.example.com/v1"
	assert http.shown_url("mqtt://only-user@h") == "mqtt://only-user@h"
