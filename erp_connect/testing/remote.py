"""A fake external system for tests: a real HTTP server on 127.0.0.1 that records every request,
answers with scripted replies (2xx, 500, 429 + Retry-After, 410, slow, a hang past the client's
timeout, a connection reset after the body was read), and serves paginated lists. Every exchange
is also kept with the time it started and ended (``exchanges``), so a test can tell whether one
event was ever in flight twice at once.

Frappe-free, so both test tiers use it:

	with RemoteSystem() as remote:
		remote.script("/hooks", Reply(500), Reply(500), Reply(200))
		... deliver to remote.url + "/hooks" ...
		remote.wait_for_requests(3)
"""

import json
import select
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

PAGINATION_STYLES = ("page", "offset", "cursor", "next_link", "link_header", "frappe")
# the filter operators the "frappe" style understands, as /api/resource applies them
_FRAPPE_OPERATORS = {
	"=": lambda a, b: a == b,
	">": lambda a, b: a > b,
	">=": lambda a, b: a >= b,
	"<": lambda a, b: a < b,
	"<=": lambda a, b: a <= b,
}


@dataclass
class Reply:
	status: int = 200
	body: bytes | str | dict | list = b""
	headers: dict[str, str] = field(default_factory=dict)
	delay: float = 0.0  # seconds to wait before answering (a slow receiver); ends early if the client leaves
	reset: bool = False  # read the request, then reset the connection instead of answering
	# send the body one byte every ``drip_every`` seconds for ``drip_seconds``: slower in all than
	# any client timeout, yet never silent for long enough that a read timeout fires
	drip_seconds: float = 0.0
	drip_every: float = 1.0


@dataclass(frozen=True)
class RecordedRequest:
	method: str
	path: str
	query: dict[str, str]
	headers: dict[str, str]  # lower-cased names
	body: bytes
	received_at: float
	status: int  # what we answered

	def json(self):
		return json.loads(self.body)


@dataclass(frozen=True)
class Exchange:
	"""One request from the moment its body was read to the moment it ended: the answer was
	written, the connection was reset, or the client went away (its timeout, or it was killed)."""

	path: str
	event_id: str  # the webhook-id header ("" without one)
	body: bytes
	started_at: float
	ended_at: float  # answered: when the last byte of the answer started to go out (the client
	# cannot have had the answer earlier), otherwise when we saw the client leave
	status: int  # what we answered, or meant to
	outcome: str  # "answered", "client gone" (before or while answering) or "reset"

	@property
	def answered_2xx(self) -> bool:
		return self.outcome == "answered" and 200 <= self.status < 300

	def json(self):
		return json.loads(self.body)


@dataclass
class ListEndpoint:
	records: list[dict]
	style: str = "page"
	id_field: str = "id"
	updated_field: str = "updated_at"
	since_param: str = "updated_since"
	max_page_size: int = 100
	slow_from: int | None = None  # pages from this row on answer slowly (to kill a reader mid-run)
	slow_seconds: float = 0.0


class RemoteSystem:
	def __init__(self, host: str = "127.0.0.1", port: int = 0, keep_requests: bool = True):
		self._lock = threading.Lock()
		self.keep_requests = keep_requests  # off for load tests: count only
		self.count = 0
		self.ids: set = set()  # the webhook-ids seen: a load test's duplicate sends are count - len(ids)
		self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
		self._defaults: dict[str, Reply] = {}
		self._responders: dict[str, Callable[[], Reply]] = {}
		self._lists: dict[str, ListEndpoint] = {}
		self.requests: list[RecordedRequest] = []
		self.exchanges: list[Exchange] = []
		self._server = ThreadingHTTPServer((host, port), self._handler_class())
		self._server.daemon_threads = True
		self._thread: threading.Thread | None = None

	# -- lifecycle ---------------------------------------------------------------------------
	@property
	def url(self) -> str:
		host, port = self._server.server_address[:2]
		return f"http://{host}:{port}"

	def start(self) -> "RemoteSystem":
		self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
		self._thread.start()
		return self

	def stop(self) -> None:
		self._server.shutdown()
		self._server.server_close()

	def __enter__(self) -> "RemoteSystem":
		return self.start()

	def __exit__(self, *exc) -> None:
		self.stop()

	# -- configuration -------------------------------------------------------------------------
	def script(self, path: str, *replies: Reply) -> None:
		"""Answer the next requests to ``path`` with these replies, in order, then fall back to the default."""
		with self._lock:
			self._scripts[path].extend(replies)

	def set_default(self, path: str, reply: Reply) -> None:
		"""Answer every unscripted request to ``path`` (or ``*`` for any path) with ``reply``."""
		with self._lock:
			self._defaults[path] = reply

	def set_responder(self, path: str, responder: Callable[[], Reply] | None) -> None:
		"""Answer every unscripted request to ``path`` with a reply that ``responder()`` picks then
		(e.g. at random); None removes it."""
		with self._lock:
			if responder is None:
				self._responders.pop(path, None)
			else:
				self._responders[path] = responder

	def serve_list(self, path: str, records: list[dict], **options) -> ListEndpoint:
		"""Serve ``records`` at ``path`` as a paginated list; the test may change them between reads."""
		endpoint = ListEndpoint(records=records, **options)
		if endpoint.style not in PAGINATION_STYLES:
			raise ValueError(f"unknown pagination style {endpoint.style!r}")
		with self._lock:
			self._lists[path] = endpoint
		return endpoint

	def reset(self) -> None:
		with self._lock:
			self._scripts.clear()
			self._defaults.clear()
			self._responders.clear()
			self._lists.clear()
			self.requests.clear()
			self.exchanges.clear()
			self.count = 0
			self.ids.clear()

	# -- inspection ----------------------------------------------------------------------------
	def received(self, path: str | None = None) -> list[RecordedRequest]:
		with self._lock:
			return [r for r in self.requests if path is None or r.path == path]

	def exchanges_of(self, path: str | None = None, wait_seconds: float = 0) -> list[Exchange]:
		"""The finished exchanges (to ``path``). An exchange is logged just after its last byte went
		out, so a client that has its answer may wait up to ``wait_seconds`` for the log."""
		deadline = time.monotonic() + wait_seconds
		while True:
			with self._lock:
				found = [x for x in self.exchanges if path is None or x.path == path]
			if found or time.monotonic() >= deadline:
				return found
			time.sleep(0.01)

	def wait_for_requests(
		self, count: int, path: str | None = None, timeout: float = 10.0
	) -> list[RecordedRequest]:
		"""Block until at least ``count`` requests arrived (to ``path``); AssertionError on timeout."""
		deadline = time.monotonic() + timeout
		while time.monotonic() < deadline:
			got = self.received(path)
			if len(got) >= count:
				return got
			time.sleep(0.02)
		raise AssertionError(
			f"expected {count} requests to {path or 'any path'}, got {len(self.received(path))}"
		)

	# -- serving -------------------------------------------------------------------------------
	def _next_reply(self, path: str) -> Reply:
		with self._lock:
			if self._scripts.get(path):
				return self._scripts[path].popleft()
			responder = self._responders.get(path)
		if responder is not None:
			return responder()
		with self._lock:
			return self._defaults.get(path) or self._defaults.get("*") or Reply(200, {"ok": True})

	def _list_page(self, endpoint: ListEndpoint, path: str, query: dict[str, str]) -> Reply:
		with self._lock:
			rows = [dict(r) for r in endpoint.records]
		if endpoint.style == "frappe":
			return Reply(200, {"data": _frappe_list(rows, query)})
		since = query.get(endpoint.since_param)
		if since:
			rows = [r for r in rows if str(r[endpoint.updated_field]) >= since]
		rows.sort(key=lambda r: (str(r[endpoint.updated_field]), str(r[endpoint.id_field])))

		size = min(int(query.get("per_page") or query.get("limit") or 20), endpoint.max_page_size)
		if endpoint.style == "page":
			start = (int(query.get("page") or 1) - 1) * size
		elif endpoint.style == "offset":
			start = int(query.get("offset") or 0)
		else:  # cursor, next_link and link_header carry the start position in an opaque token
			start = int(query.get("cursor") or 0)
		page = rows[start : start + size]
		has_more = start + size < len(rows)

		body: dict = {"data": page, "total": len(rows)}
		headers: dict[str, str] = {}
		next_query = {**query, "cursor": str(start + size)}
		next_url = f"{self.url}{path}?{urlencode(next_query)}"
		if endpoint.style == "cursor":
			body["next_cursor"] = str(start + size) if has_more else None
		elif endpoint.style == "next_link":
			body["next"] = next_url if has_more else None
		elif endpoint.style == "link_header" and has_more:
			headers["Link"] = f'<{next_url}>; rel="next"'
		slow = endpoint.slow_from is not None and start >= endpoint.slow_from
		return Reply(200, body, headers, endpoint.slow_seconds if slow else 0.0)

	def _handler_class(self):
		remote = self

		class Handler(BaseHTTPRequestHandler):
			protocol_version = "HTTP/1.1"
			# headers and body go out in two writes; without TCP_NODELAY the second waits for a
			# delayed ACK (~40 ms per keep-alive request), which no real web server does
			disable_nagle_algorithm = True

			def log_message(self, *args):  # keep test output quiet
				pass

			def _handle(self):
				parts = urlsplit(self.path)
				query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
				length = int(self.headers.get("Content-Length") or 0)
				body = self.rfile.read(length) if length else b""
				headers = {k.lower(): v for k, v in self.headers.items()}

				if parts.path == "/_count":  # for a receiver running in another process
					return self._respond(
						Reply(200, {"requests": remote.count, "distinct_ids": len(remote.ids)})
					)[0]
				endpoint = remote._lists.get(parts.path)
				if endpoint is not None and self.command == "GET" and not remote._scripts.get(parts.path):
					reply = remote._list_page(endpoint, parts.path, query)
				else:
					reply = remote._next_reply(parts.path)

				with remote._lock:
					remote.count += 1
					remote.ids.add(headers.get("webhook-id"))
					if remote.keep_requests:
						remote.requests.append(
							RecordedRequest(
								self.command, parts.path, query, headers, body, time.time(), reply.status
							)
						)
				started_at = time.time()
				ended_at = None
				if reply.reset:
					outcome = self._reset()
				elif reply.delay and not self._wait_unless_client_left(reply.delay):
					outcome = "client gone"
				else:
					outcome, ended_at = self._respond(reply)
				if parts.path != "/_count" and remote.keep_requests:
					exchange = Exchange(
						parts.path,
						headers.get("webhook-id", ""),
						body,
						started_at,
						ended_at or time.time(),
						reply.status,
						outcome,
					)
					with remote._lock:
						remote.exchanges.append(exchange)

			def _wait_unless_client_left(self, seconds: float) -> bool:
				"""Sleep ``seconds``; False as soon as the client closes its end (it gave up)."""
				deadline = time.monotonic() + seconds
				while (left := deadline - time.monotonic()) > 0:
					readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
					if readable:
						try:
							if not self.connection.recv(1, socket.MSG_PEEK):
								self.close_connection = True
								return False
						except OSError:
							self.close_connection = True
							return False
						time.sleep(min(left, 0.05))  # pipelined bytes: not a hang-up
				return True

			def _reset(self) -> str:
				"""Drop the connection with a TCP reset (SO_LINGER 0), as a crashing proxy does."""
				self.close_connection = True
				try:
					self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
					self.connection.close()
				except OSError:
					pass
				return "reset"

			def _respond(self, reply: Reply) -> tuple[str, float | None]:
				"""Answer; returns the outcome and when the last byte started to go out."""
				payload = reply.body
				content_type = "application/octet-stream"
				if isinstance(payload, dict | list):
					payload, content_type = json.dumps(payload).encode(), "application/json"
				elif isinstance(payload, str):
					payload, content_type = payload.encode(), "text/plain; charset=utf-8"
				drops = int(reply.drip_seconds / reply.drip_every) if reply.drip_seconds else 0
				if drops:
					payload = b" " * max(0, drops + 1 - len(payload)) + payload  # JSON allows the spaces
				try:
					last = time.time()
					self.send_response(reply.status)
					self.send_header("Content-Type", content_type)
					self.send_header("Content-Length", str(len(payload)))
					for name, value in reply.headers.items():
						self.send_header(name, value)
					self.end_headers()
					if drops:
						self.wfile.flush()
						for i in range(len(payload) - 1):
							self.wfile.write(payload[i : i + 1])
							self.wfile.flush()
							time.sleep(reply.drip_every if i < drops else 0)
						payload = payload[-1:]
						last = time.time()
					self.wfile.write(payload)
					self.wfile.flush()
					return "answered", last
				except (BrokenPipeError, ConnectionResetError):
					return "client gone", None  # the client gave up (e.g. its timeout fired first)

			do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

		return Handler


def _frappe_list(rows: list[dict], query: dict[str, str]) -> list[dict]:
	"""What another Frappe site's /api/resource answers: every ``filters`` condition and any one of
	the ``or_filters``, ordered by (modified, name), from limit_start."""

	def holds(row, condition):
		field, operator, value = condition[-3:]  # [doctype,] field, operator, value
		return _FRAPPE_OPERATORS[operator](str(row.get(field)), str(value))

	filters = json.loads(query.get("filters") or "[]")
	or_filters = json.loads(query.get("or_filters") or "[]")
	if query.get("order_by", "modified asc, name asc") != "modified asc, name asc":
		raise ValueError(f"the fake Frappe list orders by (modified, name) only, not {query['order_by']}")
	rows = [
		r
		for r in rows
		if all(holds(r, f) for f in filters) and (not or_filters or any(holds(r, f) for f in or_filters))
	]
	rows.sort(key=lambda r: (str(r["modified"]), str(r["name"])))
	start = int(query.get("limit_start") or 0)
	return rows[start : start + int(query.get("limit_page_length") or 20)]


def main() -> None:
	"""``python -m erp_connect.testing.remote --port N``: a receiver in its own process that answers
	200 and counts (GET /_count), for benchmarks."""
	import argparse

	parser = argparse.ArgumentParser(description=main.__doc__)
	parser.add_argument("--port", type=int, default=0)
	parser.add_argument("--delay", type=float, default=0, help="seconds before each answer")
	args = parser.parse_args()
	remote = RemoteSystem(port=args.port, keep_requests=False)
	if args.delay:
		remote.set_default("*", Reply(200, delay=args.delay))
	print(remote.url, flush=True)
	remote._server.serve_forever(0.05)


if __name__ == "__main__":
	main()
