"""The HTTP side every fake platform shares: a real threading server on 127.0.0.1 that reads each
request's JSON body and writes the platform's JSON answer. A platform subclasses it and says what
it answers (``answer``); the server, its thread and the JSON plumbing exist only here.
Frappe-free, so both test tiers use it."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

NOT_JSON = object()  # a request body that is not JSON (the platform answers it as it would)


class FakePlatformServer:
	def __init__(self, host: str = "127.0.0.1", port: int = 0):
		self.lock = threading.Lock()
		self.server = ThreadingHTTPServer((host, port), _handler_of(self))
		self.server.daemon_threads = True
		self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

	@property
	def url(self) -> str:
		host, port = self.server.server_address[:2]
		return f"http://{host}:{port}"

	def start(self):
		self.thread.start()
		return self

	def stop(self) -> None:
		self.server.shutdown()
		self.server.server_close()

	def __enter__(self):
		return self.start()

	def __exit__(self, *exc) -> None:
		self.stop()

	def answer(self, request: "Request") -> tuple[int, object, dict]:
		"""(status, JSON body, extra headers) for one request; runs in the server's threads."""
		raise NotImplementedError


class Request:
	def __init__(self, method: str, target: str, headers, raw: bytes):
		parts = urlsplit(target)
		self.method, self.path, self.target, self.headers, self.raw = method, parts.path, target, headers, raw
		self.query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
		try:
			self.body = json.loads(raw) if raw else None
		except ValueError:
			self.body = NOT_JSON


def _handler_of(platform: FakePlatformServer):
	class Handler(BaseHTTPRequestHandler):
		protocol_version = "HTTP/1.1"

		def log_message(self, *args):
			pass

		def do_GET(self):
			self._handle("GET")

		def do_POST(self):
			self._handle("POST")

		def do_PUT(self):
			self._handle("PUT")

		def do_PATCH(self):
			self._handle("PATCH")

		def do_DELETE(self):
			self._handle("DELETE")

		def _handle(self, method: str):
			length = int(self.headers.get("Content-Length") or 0)
			raw = self.rfile.read(length) if length else b""
			status, body, headers = platform.answer(Request(method, self.path, self.headers, raw))
			data = b"" if body is None else json.dumps(body).encode()
			try:
				self.send_response(status)
				self.send_header("Content-Type", "application/json")
				self.send_header("Content-Length", str(len(data)))
				for name, value in headers.items():
					self.send_header(name, value)
				self.end_headers()
				self.wfile.write(data)
			except (BrokenPipeError, ConnectionResetError):
				pass  # the client gave up waiting

	return Handler
