import datetime
import json

import pytest
import requests

from erp_connect.engine import conflict, pagination
from erp_connect.testing.remote import RemoteSystem

STYLE_OF = {
	"page": pagination.PAGE,
	"offset": pagination.OFFSET,
	"cursor": pagination.CURSOR,
	"next_link": pagination.NEXT_LINK,
	"link_header": pagination.LINK_HEADER,
}


def spec_for(style: str, **overrides) -> pagination.ListSpec:
	options = dict(
		style=STYLE_OF[style],
		page_size=7,
		since_param="updated_since",
		records_path="data",
		next_path={"cursor": "next_cursor", "next_link": "next"}.get(style, ""),
		size_param="per_page",
	)
	return pagination.ListSpec(**{**options, **overrides})


def read_all(remote: RemoteSystem, spec: pagination.ListSpec, since: str | None = None) -> list[dict]:
	"""What a pull run does, without ERPNext: follow the pages to the end."""
	request, seen = pagination.first_page(spec, since), []
	while request:
		url = request.get("url") or remote.url + "/items"
		r = requests.get(url, params=None if "url" in request else request["query"], timeout=5)
		body = r.json()
		records = pagination.records_of(spec, body)
		seen += records
		request = pagination.next_page(spec, request, body, r.headers, records, remote.url)
	return seen


def make_records(count: int, same_time_every: int = 5) -> list[dict]:
	# groups of equal timestamps that straddle the page boundaries (page size 7)
	return [
		{"id": f"r{i:04d}", "updated_at": f"2026-11-24 10:00:{i // same_time_every:02d}", "n": i}
		for i in range(count)
	]


@pytest.mark.parametrize("style", list(STYLE_OF))
def test_every_style_reads_every_record_once(style):
	records = make_records(53)
	with RemoteSystem() as remote:
		remote.serve_list("/items", records, style=style)
		got = read_all(remote, spec_for(style))
	assert sorted(r["id"] for r in got) == [r["id"] for r in records]


@pytest.mark.parametrize("style", list(STYLE_OF))
def test_since_is_inclusive_so_equal_timestamps_are_read_again_not_lost(style):
	records = make_records(40)
	with RemoteSystem() as remote:
		remote.serve_list("/items", records, style=style)
		got = read_all(remote, spec_for(style), since="2026-11-24 10:00:05")
	assert [r["id"] for r in got] == [r["id"] for r in records[25:]]


def test_a_next_link_to_another_host_is_refused():
	spec = spec_for("next_link")
	with pytest.raises(pagination.PageError, match="leaves"):
		pagination.next_page(
			spec, {}, {"next": "http://evil.example/steal"}, {}, [{"id": 1}], "http://127.0.0.1:9"
		)
	relative = pagination.next_page(
		spec, {}, {"next": "/items?cursor=5"}, {}, [{"id": 1}], "http://127.0.0.1:9"
	)
	assert relative == {"url": "http://127.0.0.1:9/items?cursor=5"}


def test_link_header_parsing():
	headers = {"link": '<https://a/x?page=1>; rel="prev", <https://a/x?page=3>; rel="next"'}
	assert pagination.link_header_next(headers) == "https://a/x?page=3"
	assert pagination.link_header_next({"Link": '<https://a/x?page=1>; rel="prev"'}) is None


def test_a_body_that_is_not_a_list_is_a_clear_error():
	with pytest.raises(pagination.PageError, match="expected a list of objects at data"):
		pagination.records_of(spec_for("page"), {"data": {"id": 1}})
	assert pagination.records_of(pagination.ListSpec(), [{"id": 1}]) == [{"id": 1}]


def test_spec_problems_are_named():
	assert pagination.ListSpec(style="Scroll", page_size=0).problems() == [
		"unknown pagination style 'Scroll'",
		"page size must be between 1 and 10000",
	]
	assert "needs the path" in pagination.ListSpec(style=pagination.CURSOR).problems()[0]
	assert spec_for("cursor").problems() == []


def test_frappe_keyset_starts_strictly_after_the_last_modified_and_name():
	spec = pagination.ListSpec(style=pagination.FRAPPE, page_size=3)
	first = pagination.first_page(spec, "2026-01-01")
	assert first["query"]["filters"] == '[["modified", ">=", "2026-01-01"]]'
	assert first["query"]["order_by"] == "modified asc, name asc"
	assert "or_filters" not in first["query"]
	page = [{"name": "a", "modified": "t1"}, {"name": "b", "modified": "t2"}, {"name": "c", "modified": "t2"}]
	second = pagination.next_page(spec, first, page, {}, page, "")["query"]
	assert (second["filters"], second["or_filters"], second["limit_start"]) == (
		'[["modified", ">=", "t2"]]',
		'[["modified", ">", "t2"], ["name", ">", "c"]]',
		"0",
	)
	assert pagination.next_page(spec, second, page[:2], {}, page[:2], "") is None
	with pytest.raises(pagination.PageError, match="name and modified"):
		pagination.next_page(spec, first, page, {}, [*page[:2], {"name": "d"}], "")


def test_frappe_keyset_against_a_list_with_equal_timestamps():
	rows = [{"name": f"n{i:03d}", "modified": f"t{i // 4:03d}"} for i in range(50)]
	spec = pagination.ListSpec(style=pagination.FRAPPE, page_size=3, records_path="data")
	with RemoteSystem() as remote:
		remote.serve_list("/items", rows, style="frappe")
		seen = read_all(remote, spec)
	assert [r["name"] for r in seen] == [r["name"] for r in rows]


def test_frappe_keyset_loses_nothing_when_tied_records_change_between_pages():
	tie = "2026-11-24 10:00:00.000000"
	rows = [{"name": f"n{i}", "modified": tie} for i in range(7)]
	rows += [{"name": "z", "modified": "2026-11-24 10:00:01.000000"}]
	spec = pagination.ListSpec(style=pagination.FRAPPE, page_size=3, records_path="data")
	with RemoteSystem() as remote:
		endpoint = remote.serve_list("/api/resource/Item", rows, style="frappe")
		request, seen = pagination.first_page(spec, tie), []
		for page_number in range(20):
			r = requests.get(remote.url + "/api/resource/Item", params=request["query"], timeout=5)
			records = pagination.records_of(spec, r.json())
			seen += [x["name"] for x in records]
			if page_number == 0:  # between pages: one record read is edited, another deleted
				endpoint.records[0] = {"name": "n0", "modified": "2026-11-24 10:00:02.000000"}
				del endpoint.records[1]
			request = pagination.next_page(spec, request, r.json(), r.headers, records, remote.url)
			if not request:
				break
	unread = {"n2", "n3", "n4", "n5", "n6", "z"}
	assert unread <= set(seen), f"skipped {sorted(unread - set(seen))}"


def test_format_since():
	moment = datetime.datetime(
		2026, 11, 24, 15, 30, 5, 7, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30))
	)
	assert pagination.format_since(moment, pagination.ISO) == "2026-11-24T10:00:05Z"
	assert pagination.format_since(moment, pagination.UNIX) == str(int(moment.timestamp()))
	with pytest.raises(ValueError, match="time zone"):
		pagination.format_since(moment.replace(tzinfo=None), pagination.ISO)


@pytest.mark.parametrize(
	"policy, remote_changed, erpnext_changed, expected",
	[
		(conflict.REMOTE_WINS, False, True, conflict.SKIP),
		(conflict.ERPNEXT_WINS, True, False, conflict.WRITE),
		(conflict.PARK, True, False, conflict.WRITE),
		(conflict.REMOTE_WINS, True, True, conflict.WRITE),
		(conflict.ERPNEXT_WINS, True, True, conflict.KEEP_ERPNEXT),
		(conflict.PARK, True, True, conflict.PARK),
	],
)
def test_conflict_decisions(policy, remote_changed, erpnext_changed, expected):
	assert conflict.decide(policy, remote_changed, erpnext_changed) == expected


def test_content_hash_ignores_key_order_and_sees_values():
	assert conflict.content_hash({"a": 1, "b": [1, 2]}) == conflict.content_hash({"b": [1, 2], "a": 1})
	assert conflict.content_hash({"a": 1}) != conflict.content_hash({"a": 2})
	with pytest.raises(ValueError):
		conflict.decide("Coin Flip", True, True)


def test_frappe_site_requests_update_then_create_and_drop_system_fields():
	from erp_connect.engine.transports import frappe_site

	event = {
		"type": "Item.on_update",
		"doctype": "Item",
		"name": "SKU 1/2",
		"data": {
			"name": "SKU 1/2",
			"modified": "2026-11-24",
			"_user_tags": "x",
			"item_name": "Bolt",
			"description": None,
			"uoms": [{"name": "row1", "parent": "SKU 1/2", "idx": 1, "uom": "Nos"}],
		},
	}
	put, post = frappe_site.requests_for(event)
	assert put[:2] == ("PUT", "/api/resource/Item/SKU%201%2F2")
	assert json.loads(put[2]) == {"item_name": "Bolt", "uoms": [{"uom": "Nos"}]}
	assert post[:2] == ("POST", "/api/resource/Item")
	assert json.loads(post[2])["name"] == "SKU 1/2"
	assert frappe_site.requests_for({**event, "type": "Item.on_trash"}) == [
		("DELETE", "/api/resource/Item/SKU%201%2F2", None)
	]
