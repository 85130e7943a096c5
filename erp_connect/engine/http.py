"""The outbound HTTP client: always a timeout, never a redirect, and no requests to internal hosts
unless the connector explicitly allows them (a configurable URL must not become a way to probe the
site's own network)."""

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NameResolutionError

DEFAULT_TIMEOUT_SECONDS = 10.0
USER_AGENT = "erp_connect/0.1"


class BlockedTargetError(Exception):
	"""The URL points somewhere we refuse to send to."""


class MalformedHostError(BlockedTargetError):
	"""The host name can never resolve as written (an empty label, a label over 63 characters):
	permanent, unlike a name the DNS does not know today."""


@dataclass(frozen=True)
class Response:
	status: int
	headers: Mapping[str, str]
	body: bytes
	elapsed: float


HTTP_SCHEMES = ("http", "https")


def validate_url(url: str, schemes: tuple[str, ...] = HTTP_SCHEMES) -> str:
	"""Return a readable problem with the URL, or '' when it is usable: one of ``schemes``
	(http(s) by default; a broker's or a database's for their kinds), a host, a valid port."""
	if not url or not isinstance(url, str):
		return "the URL is empty"
	if any(c.isspace() for c in url):
		return "the URL contains white space"
	parts = urlsplit(url)
	if parts.scheme not in schemes:
		return "the URL must start with " + " or ".join(f"{s}://" for s in schemes)
	if not parts.hostname:
		return "the URL has no host name"
	try:
		parts.port  # raises ValueError on a malformed port
	except ValueError:
		return "the URL has an invalid port"
	return ""


def shown_url(url: str) -> str:
	"""A URL fit to show a person: a password in it becomes ``***`` (broker URLs carry one)."""
	parts = urlsplit(url or "")
	if parts.password is None:
		return url
	user = parts.username or ""
	host = parts.netloc.rpartition("@")[2]
	return parts._replace(netloc=f"{user}:***@{host}").geturl()


def check_target(url: str, allow_private: bool = False) -> None:
	"""Raise BlockedTargetError unless every address the host resolves to is public (or allowed)."""
	problem = validate_url(url)
	if problem:
		raise BlockedTargetError(problem)
	check_host(urlsplit(url).hostname, allow_private)


def check_host(host: str, allow_private: bool = False) -> None:
	"""Raise BlockedTargetError unless every address ``host`` resolves to is public (or allowed):
	the SSRF guard of every kind, HTTP, broker or database, checked before it connects."""
	check_host_name(host)
	if allow_private:
		return
	try:
		checked_address(host, None, allow_private)
	except socket.gaierror as e:
		raise requests.exceptions.ConnectionError(f"cannot resolve host {host}: {e}")
	except (UnicodeError, ValueError) as e:  # what the IDNA encoding inside getaddrinfo raises
		raise MalformedHostError(f"cannot resolve host {host}: {e}") from None


def checked_address(host: str, port: int | None, allow_private: bool) -> str:
	"""The address to connect to for ``host``: resolved once here, every answer checked;
	BlockedTargetError when one is not public (unless private targets are allowed)."""
	infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
	for info in infos:
		address = ipaddress.ip_address(info[4][0].split("%")[0])
		if not allow_private and not address.is_global:
			raise BlockedTargetError(
				f"{host} resolves to the non-public address {address}; "
				"allow private network targets on the connector to send there"
			)
	return infos[0][4][0]


# -- connecting to the address that was checked ------------------------------------------------
# requests would resolve the host again after check_target, and an answer that changed in between
# (DNS rebinding) would reach the internal network. So the connection resolves the host itself,
# once, checks every answer and connects to exactly that address; TLS still checks the name.
class _GuardedConnection(HTTPConnection):
	allow_private = False

	def _new_conn(self):
		try:
			self._dns_host = checked_address(self.host.rstrip("."), self.port, self.allow_private)
		except socket.gaierror as e:
			raise NameResolutionError(self.host, self, e) from e
		return super()._new_conn()


class _GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
	pass


def _guarded_pools(allow_private: bool) -> dict:
	def pool(base, connection):
		guarded = type("Guarded" + connection.__name__, (connection,), {"allow_private": allow_private})
		return type("Guarded" + base.__name__, (base,), {"ConnectionCls": guarded})

	return {
		"http": pool(HTTPConnectionPool, _GuardedConnection),
		"https": pool(HTTPSConnectionPool, _GuardedHTTPSConnection),
	}


_POOLS = {allowed: _guarded_pools(allowed) for allowed in (False, True)}


class GuardedAdapter(HTTPAdapter):
	def __init__(self, allow_private: bool):
		self.allow_private = allow_private
		super().__init__()

	def init_poolmanager(self, *args, **kwargs):
		super().init_poolmanager(*args, **kwargs)
		self.poolmanager.pool_classes_by_scheme = _POOLS[self.allow_private]


def guarded(session: requests.Session, allow_private: bool) -> requests.Session:
	"""``session`` with its connections made as above (mounted once per session and setting)."""
	if getattr(session, "erp_connect_allow_private", None) is not allow_private:
		adapter = GuardedAdapter(allow_private)
		session.mount("http://", adapter)
		session.mount("https://", adapter)
		session.erp_connect_allow_private = allow_private
	return session


def check_host_name(host: str) -> None:
	"""Raise MalformedHostError for a name no resolver can take (getaddrinfo and urllib3 would
	raise UnicodeError or ValueError deep inside the request)."""
	try:
		host.encode("idna")
	except UnicodeError:
		raise MalformedHostError(
			f"cannot resolve host {host}: the name has an empty label or one longer than 63 characters"
		) from None


def send(
	method: str,
	url: str,
	*,
	body: bytes | None = None,
	headers: Mapping[str, str] | None = None,
	params: Mapping[str, str] | None = None,
	timeout: float = DEFAULT_TIMEOUT_SECONDS,
	allow_private: bool = False,
	session: requests.Session | None = None,
) -> Response:
	"""One HTTP request; raises requests exceptions or BlockedTargetError when there is no response."""
	check_target(url, allow_private)
	all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
	http = guarded(session or requests.Session(), allow_private)
	r = http.request(
		method, url, data=body, headers=all_headers, params=params, timeout=timeout, allow_redirects=False
	)
	return Response(
		status=r.status_code, headers=dict(r.headers), body=r.content, elapsed=r.elapsed.total_seconds()
	)
