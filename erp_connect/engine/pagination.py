"""Reading a remote list page by page: the request for each page, the records and the next page in
each response, for the five pagination styles remote APIs use, plus another Frappe site's REST API.

A page request is a plain dict ({"url": ...} or {"query": {...}}) so a run can store where it is
and resume there after a crash. Nothing here talks to the network.
"""

import datetime
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from erp_connect.engine.mapping import read_path

PAGE, OFFSET, CURSOR, NEXT_LINK, LINK_HEADER, FRAPPE = (
	"Page Number",
	"Offset",
	"Cursor Token",
	"Next Link",
	"Link Header",
	"Frappe Site",
)
# a stream's durable consumer (NATS JetStream): messages, acknowledged after their commit
STREAM = "Stream Consumer"
STYLES = (PAGE, OFFSET, CURSOR, NEXT_LINK, LINK_HEADER, FRAPPE, STREAM)
# styles whose position is a count of rows: a record that changes during a run moves to the end
# of the list and shifts the rows after it, so such a run must not advance the watermark
COUNTING_STYLES = (PAGE, OFFSET)

ISO, UNIX = "ISO 8601", "Unix Seconds"

_LINK_NEXT = re.compile(r'<([^>]+)>\s*;[^,]*\brel="?next"?', re.IGNORECASE)


class PageError(ValueError):
	"""The response is not the list the rule describes."""


@dataclass(frozen=True)
class ListSpec:
	style: str = PAGE
	page_size: int = 100
	since_param: str = ""  # empty: the remote cannot filter, every run reads everything
	since_format: str = ISO
	records_path: str = ""  # where the list is in the body; empty: the body is the list
	next_path: str = ""  # where the cursor token or next link is in the body
	page_param: str = "page"
	size_param: str = "per_page"
	offset_param: str = "offset"
	cursor_param: str = "cursor"
	id_field: str = "id"
	modified_field: str = "updated_at"
	extra_query: Mapping[str, str] = field(default_factory=dict)

	def problems(self) -> list[str]:
		found = []
		if self.style not in STYLES:
			found.append(f"unknown pagination style {self.style!r}")
		if not 1 <= self.page_size <= 10_000:
			found.append("page size must be between 1 and 10000")
		if self.since_format not in (ISO, UNIX):
			found.append(f"unknown since format {self.since_format!r}")
		if self.style in (CURSOR, NEXT_LINK) and not self.next_path:
			found.append(f"{self.style} pagination needs the path of the next page in the body")
		return found


def format_since(value: datetime.datetime, since_format: str) -> str:
	"""A watermark (a time-zone aware moment) as the remote's filter wants it: ISO 8601 in UTC,
	whole seconds (the overlap makes up for the lost fraction), or Unix seconds."""
	if value.tzinfo is None:
		raise ValueError("a watermark must carry its time zone")
	if since_format == UNIX:
		return str(int(value.timestamp()))
	return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def first_page(spec: ListSpec, since: str | None) -> dict:
	"""The request for the first page of the records changed since ``since`` (None: all)."""
	if spec.style == FRAPPE:
		return {"query": frappe_query(spec, since)}
	query = dict(spec.extra_query)
	if since and spec.since_param:
		query[spec.since_param] = since
	query[spec.size_param] = str(spec.page_size)
	if spec.style == PAGE:
		query[spec.page_param] = "1"
	elif spec.style == OFFSET:
		query[spec.offset_param] = "0"
	return {"query": query}


def frappe_query(spec: ListSpec, since: str | None, after_name: str | None = None) -> dict:
	"""/api/resource list parameters, keyset-paginated on (modified, name) as the change feed is:
	the first page asks for modified >= the watermark, each next one for the rows strictly after
	the last (modified, name) read - modified >= T and (modified > T or name > N), the "or" in
	``or_filters``. No row count is skipped, so a record edited or deleted between pages shifts
	nothing and equal timestamps across a page boundary lose nothing."""
	filters = [["modified", ">=", since]] if since else []
	query = {
		**spec.extra_query,
		"filters": json.dumps(filters),
		"order_by": "modified asc, name asc",
		"limit_start": "0",
		"limit_page_length": str(spec.page_size),
	}
	if since and after_name is not None:
		query["or_filters"] = json.dumps([["modified", ">", since], ["name", ">", after_name]])
	return query


def records_of(spec: ListSpec, body) -> list[dict]:
	records = read_path(body, spec.records_path) if spec.records_path else body
	if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
		where = spec.records_path or "the body"
		raise PageError(f"expected a list of objects at {where}, got {type(records).__name__}")
	return records


def next_page(
	spec: ListSpec, request: dict, body, headers: Mapping[str, str], records: list[dict], base_url: str
) -> dict | None:
	"""The request for the page after ``request``, or None when this was the last page."""
	if not records:
		return None
	if spec.style == PAGE:
		if len(records) < spec.page_size:
			return None
		query = dict(request["query"])
		query[spec.page_param] = str(int(query.get(spec.page_param) or 1) + 1)
		return {"query": query}
	if spec.style == OFFSET:
		if len(records) < spec.page_size:
			return None
		query = dict(request["query"])
		query[spec.offset_param] = str(int(query.get(spec.offset_param) or 0) + len(records))
		return {"query": query}
	if spec.style == CURSOR:
		token = read_path(body, spec.next_path)
		if token in (None, ""):
			return None
		return {"query": {**request.get("query", {}), spec.cursor_param: str(token)}}
	if spec.style == NEXT_LINK:
		link = read_path(body, spec.next_path)
		return {"url": same_origin(base_url, str(link))} if link else None
	if spec.style == LINK_HEADER:
		link = link_header_next(headers)
		return {"url": same_origin(base_url, link)} if link else None
	return frappe_next(spec, request, records)


def frappe_next(spec: ListSpec, request: dict, records: list[dict]) -> dict | None:
	if len(records) < spec.page_size:
		return None
	last = records[-1]
	modified, name = str(last.get("modified") or ""), str(last.get("name") or "")
	if not (modified and name):
		raise PageError("Frappe records must carry their name and modified time")
	return {"query": frappe_query(spec, modified, name)}


def link_header_next(headers: Mapping[str, str]) -> str | None:
	value = next((v for k, v in headers.items() if k.lower() == "link"), "")
	match = _LINK_NEXT.search(value or "")
	return match.group(1) if match else None


def same_origin(base_url: str, link: str) -> str:
	"""A next link is followed only to the connector's own host: a remote cannot send the
	connector's credentials somewhere else."""
	url = urljoin(base_url + "/", link)
	base, target = urlsplit(base_url), urlsplit(url)
	if (target.scheme, target.netloc) != (base.scheme, base.netloc):
		raise PageError(f"the next page link {url} leaves {base.scheme}://{base.netloc}")
	return url


def record_id(spec: ListSpec, record: dict) -> str | None:
	value = read_path(record, spec.id_field)
	return None if value in (None, "") else str(value)
