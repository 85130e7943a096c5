"""The fake external system is test tooling that later tests lean on, so it is tested too."""

import time

import pytest
import requests

from erp_connect.testing.remote import RemoteSystem, Reply


@pytest.fixture
def remote():
	with RemoteSystem() as server:
		yield server


def test_records_requests_and_answers_200_by_default(remote):
	r = requests.post(remote.url + "/hook?x=1", data=b"hello", headers={"webhook-id": "msg_1"})
	assert r.status_code == 200
	[seen] = remote.received("/hook")
	assert (seen.method, seen.body, seen.query, seen.headers["webhook-id"], seen.status) == (
		"POST",
		b"hello",
		{"x": "1"},
		"msg_1",
		200,
	)


def test_scripted_failures_then_success(remote):
	remote.script("/hook", Reply(500), Reply(429, headers={"Retry-After": "3"}), Reply(410), Reply(201))
	answers = [requests.post(remote.url + "/hook") for _ in range(5)]
	assert [a.status_code for a in answers] == [500, 429, 410, 201, 200]
	assert answers[1].headers["Retry-After"] == "3"


def test_default_reply_per_path_and_wildcard(remote):
	remote.set_default("*", Reply(503))
	remote.set_default("/ok", Reply(204))
	assert requests.get(remote.url + "/any").status_code == 503
	assert requests.get(remote.url + "/ok").status_code == 204


def test_slow_reply(remote):
	remote.script("/slow", Reply(200, delay=0.3))
	started = time.monotonic()
	requests.get(remote.url + "/slow")
	assert time.monotonic() - started >= 0.3


def test_exchanges_keep_when_each_request_started_and_ended(remote):
	remote.script("/hook", Reply(200, delay=0.2))
	requests.post(remote.url + "/hook", data=b"{}", headers={"webhook-id": "evt_1"})
	[x] = remote.exchanges_of("/hook", wait_seconds=5)
	assert (x.event_id, x.status, x.outcome, x.answered_2xx) == ("evt_1", 200, "answered", True)
	assert x.ended_at - x.started_at >= 0.2


def test_a_hang_ends_when_the_client_gives_up(remote):
	remote.script("/hang", Reply(200, delay=30))
	started = time.monotonic()
	with pytest.raises(requests.exceptions.ReadTimeout):
		requests.post(remote.url + "/hang", data=b"{}", timeout=0.3)
	assert time.monotonic() - started < 5
	[x] = remote.exchanges_of("/hang", wait_seconds=5)
	assert x.outcome == "client gone" and not x.answered_2xx
	assert x.ended_at - x.started_at < 2  # the server noticed at once, not after 30 s


def test_a_reset_after_the_body_was_read(remote):
	remote.script("/reset", Reply(reset=True))
	with pytest.raises(requests.exceptions.ConnectionError):
		requests.post(remote.url + "/reset", data=b"payload", headers={"webhook-id": "evt_2"})
	[seen] = remote.received("/reset")
	assert seen.body == b"payload"
	assert [x.outcome for x in remote.exchanges_of("/reset", wait_seconds=5)] == ["reset"]
	assert requests.get(remote.url + "/reset").status_code == 200  # the server goes on


def test_a_dripping_answer_outlasts_a_read_timeout(remote):
	remote.script("/drip", Reply(200, {"ok": True}, drip_seconds=2.0, drip_every=0.2))
	started = time.monotonic()
	r = requests.post(remote.url + "/drip", data=b"{}", timeout=1.0)  # no read waits 1 s
	assert r.json() == {"ok": True}
	assert time.monotonic() - started >= 2.0
	[x] = remote.exchanges_of("/drip", wait_seconds=5)
	assert x.outcome == "answered" and x.ended_at - x.started_at >= 2.0


def test_a_responder_picks_each_reply(remote):
	replies = iter([Reply(500), Reply(201)])
	remote.set_responder("/r", lambda: next(replies))
	assert [requests.get(remote.url + "/r").status_code for _ in range(2)] == [500, 201]
	remote.set_responder("/r", None)
	assert requests.get(remote.url + "/r").status_code == 200


def test_wait_for_requests_times_out_with_a_message(remote):
	with pytest.raises(AssertionError, match="expected 1 requests"):
		remote.wait_for_requests(1, timeout=0.1)


def read_all(remote, path, style, **params):
	"""Follow the list's own pagination to the end; return all ids in order."""
	ids, url, query = [], remote.url + path, {"per_page": 7, "limit": 7, **params}
	for page_number in range(1, 100):
		if style == "page":
			query["page"] = page_number
		r = requests.get(url, params=query)
		body = r.json()
		ids += [row["id"] for row in body["data"]]
		if style == "page" and not body["data"]:
			return ids
		if style == "offset":
			if not body["data"]:
				return ids
			query["offset"] = len(ids)
		if style == "cursor":
			if not body["next_cursor"]:
				return ids
			query["cursor"] = body["next_cursor"]
		if style == "next_link":
			if not body["next"]:
				return ids
			url, query = body["next"], {}
		if style == "link_header":
			if "next" not in r.links:
				return ids
			url, query = r.links["next"]["url"], {}
	raise AssertionError("pagination did not end")


@pytest.mark.parametrize("style", ["page", "offset", "cursor", "next_link", "link_header"])
def test_every_pagination_style_serves_each_record_once(remote, style):
	records = [{"id": f"r{i:03}", "updated_at": f"2026-01-01 00:00:{i % 3:02}"} for i in range(50)]
	remote.serve_list("/items", records, style=style)
	ids = read_all(remote, "/items", style)
	assert sorted(ids) == sorted(r["id"] for r in records)
	assert len(ids) == len(set(ids))


def test_updated_since_filters_and_changes_are_seen(remote):
	records = [{"id": "a", "updated_at": "2026-01-01"}, {"id": "b", "updated_at": "2026-01-03"}]
	remote.serve_list("/items", records, style="cursor")
	assert read_all(remote, "/items", "cursor", updated_since="2026-01-02") == ["b"]
	records.append({"id": "c", "updated_at": "2026-01-04"})
	assert read_all(remote, "/items", "cursor", updated_since="2026-01-02") == ["b", "c"]


def test_unknown_pagination_style_is_refused(remote):
	with pytest.raises(ValueError, match="unknown pagination"):
		remote.serve_list("/x", [], style="scroll")


def test_count_only_mode_counts_without_keeping_requests():
	with RemoteSystem(keep_requests=False) as remote:
		for _ in range(3):
			requests.post(remote.url + "/hook", data=b"x")
		assert remote.requests == []
		assert requests.get(remote.url + "/_count").json()["requests"] == 3
