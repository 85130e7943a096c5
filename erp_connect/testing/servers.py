"""The real servers this machine runs for the tests (brokers, PostgreSQL): whether one listens.
A test of a server that is not there is skipped with the reason, never faked."""

import asyncio
import socket

NATS_URL = "nats://127.0.0.1:4222"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
	try:
		with socket.create_connection((host, port), timeout=1):
			return True
	except OSError:
		return False


def js_call(fn, url: str = NATS_URL):
	"""Run ``fn(js)`` (it returns an awaitable) on a NATS connection of its own: the consumer's side
	of a test or benchmark (streams made, read and deleted)."""
	import nats

	async def main():
		nc = await nats.connect(url, connect_timeout=5)
		try:
			return await fn(nc.jetstream())
		finally:
			await nc.close()

	return asyncio.run(main())
