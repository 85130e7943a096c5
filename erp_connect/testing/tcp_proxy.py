"""A TCP proxy on 127.0.0.1 in front of a real broker, for fault tests: it forwards both ways until
told to cut, then lets a chosen client message reach the broker, swallows the broker's answer (the
PubAck, publisher confirm or PUBACK) and drops both connections. The broker has stored the message;
the client never hears so. Later connections pass through normally.

No frappe here: the pure engine tests use it too.
"""

import socket
import threading

CHUNK = 65536
ANSWER_WAIT_SECONDS = 2.0


class _Pair:
	def __init__(self, client: socket.socket, server: socket.socket):
		self.client, self.server = client, server
		self.cutting = False
		self.answered = threading.Event()

	def close(self) -> None:
		for s in (self.client, self.server):
			try:
				s.shutdown(socket.SHUT_RDWR)
			except OSError:
				pass
			s.close()


class CuttingProxy:
	"""``with CuttingProxy(4222) as proxy:`` ... ``proxy.cut_after(b"evt_...")``."""

	def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1"):
		self.upstream = (upstream_host, upstream_port)
		self.listener = socket.create_server(("127.0.0.1", 0))
		self.listener.settimeout(0.2)
		self.port = self.listener.getsockname()[1]
		self._marker: bytes | None = None
		self._drop = True
		self._lock = threading.Lock()
		self._stopped = threading.Event()
		self._pairs: list[_Pair] = []
		self.cuts = 0  # connections cut so far
		self.swallowed = 0  # bytes of broker answers never forwarded
		self._thread = threading.Thread(target=self._accept, daemon=True)

	def __enter__(self):
		self._thread.start()
		return self

	def __exit__(self, *exc):
		self.stop()

	def cut_after(self, marker: bytes, drop: bool = True) -> None:
		"""The next client chunk that contains ``marker`` reaches the broker; nothing after it
		comes back, and the connection is dropped (``drop=False``: it stays open and silent, an
		ack lost without a word)."""
		with self._lock:
			self._marker, self._drop = marker, drop

	def stop(self) -> None:
		self._stopped.set()
		self._thread.join(2)
		self.listener.close()
		for pair in list(self._pairs):
			pair.close()

	def _accept(self) -> None:
		while not self._stopped.is_set():
			try:
				client, _ = self.listener.accept()
			except TimeoutError:
				continue
			except OSError:
				return
			try:
				server = socket.create_connection(self.upstream, timeout=5)
			except OSError:
				client.close()
				continue
			server.settimeout(None)
			pair = _Pair(client, server)
			self._pairs.append(pair)
			threading.Thread(target=self._client_to_server, args=(pair,), daemon=True).start()
			threading.Thread(target=self._server_to_client, args=(pair,), daemon=True).start()

	def _client_to_server(self, pair: _Pair) -> None:
		tail = b""
		try:
			while True:
				data = pair.client.recv(CHUNK)
				if not data:
					break
				with self._lock:  # decided before forwarding: the answer may come back at once
					marker = self._marker
					hit = marker is not None and marker in tail + data
					if hit:
						self._marker = None
						pair.cutting = True
				pair.server.sendall(data)
				if hit and self._drop:
					pair.answered.wait(ANSWER_WAIT_SECONDS)  # the broker has handled it
					self.cuts += 1
					break
				if hit:
					self.cuts += 1  # silent from now on: the client's data still reaches the broker
				tail = (tail + data)[-4096:]
		except OSError:
			pass
		pair.close()

	def _server_to_client(self, pair: _Pair) -> None:
		try:
			while True:
				data = pair.server.recv(CHUNK)
				if not data:
					break
				if pair.cutting:
					self.swallowed += len(data)
					pair.answered.set()
					continue
				pair.client.sendall(data)
		except OSError:
			pass
		pair.close()
