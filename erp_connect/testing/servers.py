"""The real servers this machine runs for the tests (brokers, PostgreSQL): whether one listens.
A test of a server that is not there is skipped with the reason, never faked."""

import socket


def port_open(port: int, host: str = "127.0.0.1") -> bool:
	try:
		with socket.create_connection((host, port), timeout=1):
			return True
	except OSError:
		return False
