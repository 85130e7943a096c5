"""What every integration test stands on: one base class for Frappe v15 and v16, factories, and a
real web server for the test site so API tests go over HTTP with real API keys."""

import atexit
import os
import signal
import socket
import subprocess
import sys
import time

import frappe
import requests
from frappe.utils.background_jobs import get_queue, get_redis_conn
from rq import Worker
from rq.worker import WorkerStatus

try:  # Frappe v16 renamed the base class
	from frappe.tests import IntegrationTestCase as _FrappeTestCase
except ImportError:  # Frappe v15
	from frappe.tests.utils import FrappeTestCase as _FrappeTestCase

from erp_connect.services.push import delivery
from erp_connect.services.push.outbox import clear_rules_cache
from erp_connect.testing.remote import RemoteSystem

TEST_PREFIX = "_Test EC "
CLOSED_PORT_URL = "http://127.0.0.1:9"  # where connectors of tests without a fake remote point

# a remote system's customer {"id", "name", "site"} as a Customer: the field map of the pull tests,
# the bench command tests and the pull benchmark
REMOTE_CUSTOMER_MAP = [
	{"erpnext_field": "customer_name", "external_path": "name", "required": 1},
	{"erpnext_field": "website", "external_path": "site"},
	{
		"erpnext_field": "customer_group",
		"external_path": "group",
		"transform": "Constant",
		"transform_option": "All Customer Groups",
	},
	{
		"erpnext_field": "territory",
		"external_path": "territory",
		"transform": "Constant",
		"transform_option": "All Territories",
	},
]


class ConnectTestCase(_FrappeTestCase):
	"""Integration test base. Data a test commits (because another process must see it) is
	named with TEST_PREFIX and removed by ``testing.cleanup.delete_test_data``. Classes that talk
	to an external system set ``fake_remote`` and get a real HTTP server on 127.0.0.1."""

	fake_remote = False
	remote: RemoteSystem

	@classmethod
	def setUpClass(cls):
		super().setUpClass()
		if cls.fake_remote:
			cls.remote = RemoteSystem().start()
			cls.addClassCleanup(cls.remote.stop)

	def setUp(self):
		if self.fake_remote:
			self.remote.reset()
		clear_rules_cache()
		self.addCleanup(clear_rules_cache)

	# -- delivering ----------------------------------------------------------------------------
	def drain(self) -> dict:
		"""Deliver the due events of this test's connector (``self.connector``) in this process."""
		frappe.db.commit()
		return delivery.drain(self.connector.name, max_seconds=20)

	def make_due(self) -> None:
		"""Every event of this test's connector due now, its connector's backoff forgotten."""
		frappe.db.sql(
			"update `tabSync Event` set next_attempt_at = %s where connector = %s",
			(frappe.utils.add_to_date(frappe.utils.now_datetime(), seconds=-1), self.connector.name),
		)
		frappe.cache.delete_value(delivery._backoff_key(self.connector.name))
		frappe.db.commit()

	# -- factories ------------------------------------------------------------------------------
	def make_connector(self, name: str | None = None, **fields) -> "frappe.Document":
		doc = frappe.get_doc(
			{
				"doctype": "Connector",
				"connector_name": name or TEST_PREFIX + frappe.generate_hash(length=8),
				"connector_type": "Webhook",
				"base_url": self.remote.url if self.fake_remote else CLOSED_PORT_URL,
				"allow_private_network": 1,
				"auth_type": "None",
				**fields,
			}
		)
		return doc.insert()

	def make_rule(
		self, connector: str, doctype: str = "Customer", events=("after_insert",), field_map=None, **fields
	):
		"""A push rule; ``field_map`` is a list of (erpnext_field, external_path[, transform, option, required])."""
		rows = [
			dict(
				zip(
					("erpnext_field", "external_path", "transform", "transform_option", "required"),
					row,
					strict=False,
				)
			)
			for row in (field_map or [("name", "id")])
		]
		doc = frappe.get_doc(
			{
				"doctype": "Sync Rule",
				"connector": connector,
				"reference_doctype": doctype,
				"target_path": "/hooks",
				**{f"event_{e}": 1 for e in events},
				"field_map": rows,
				**fields,
			}
		)
		return doc.insert()


def company() -> str:
	return (
		frappe.db.get_single_value("Global Defaults", "default_company")
		or frappe.get_all("Company", pluck="name")[0]
	)


def make_customer(name: str | None = None, **fields) -> "frappe.Document":
	return frappe.get_doc(
		{
			"doctype": "Customer",
			"customer_name": name or TEST_PREFIX + frappe.generate_hash(length=8),
			"customer_group": "All Customer Groups",
			"territory": "All Territories",
			**fields,
		}
	).insert()


def our_customers() -> int:
	"""The test customers committed now (by this process or any other)."""
	frappe.db.commit()
	return frappe.db.count("Customer", {"customer_name": ("like", TEST_PREFIX + "%")})


def force_allowed(connector: str, doctype: str) -> None:
	"""An Allowed DocTypes row put in the database past the connector's validation."""
	frappe.get_doc(
		{
			"doctype": "Connector Access",
			"parent": connector,
			"parenttype": "Connector",
			"parentfield": "allowed_doctypes",
			"reference_doctype": doctype,
			"can_create": 1,
			"can_update": 1,
		}
	).db_insert()
	frappe.db.commit()


def make_item(code: str | None = None, **fields) -> "frappe.Document":
	code = code or TEST_PREFIX + frappe.generate_hash(length=8)
	if frappe.db.exists("Item", code):
		return frappe.get_doc("Item", code)
	return frappe.get_doc(
		{
			"doctype": "Item",
			"item_code": code,
			"item_group": "All Item Groups",
			"stock_uom": "Nos",
			"is_stock_item": 0,
			**fields,
		}
	).insert()


def make_sales_invoice(
	customer: str, items: list[tuple[str, float, float]], submit: bool = True
) -> "frappe.Document":
	"""A plain (non-POS, no stock) Sales Invoice; items are (item_code, qty, rate)."""
	invoice = frappe.get_doc(
		{
			"doctype": "Sales Invoice",
			"company": company(),
			"customer": customer,
			"items": [{"item_code": code, "qty": qty, "rate": rate} for code, qty, rate in items],
		}
	)
	invoice.insert()
	if submit:
		invoice.submit()
	return invoice


def start_worker(burst: bool = True, queue: str = "default") -> subprocess.Popen:
	"""A real RQ worker for this bench (its own process group, so a test can SIGKILL it whole);
	``queue`` may list several, comma-separated."""
	command = [sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "worker", "--queue", queue]
	sites_path = os.path.abspath(frappe.local.sites_path)
	log = open(os.path.join(sites_path, "..", "logs", "erp_connect_test_worker.log"), "a")
	process = subprocess.Popen(
		[*command, "--burst"] if burst else command,
		cwd=sites_path,
		stdout=log,
		stderr=subprocess.STDOUT,
		start_new_session=True,
	)
	atexit.register(lambda: process.poll() is None and process.kill())
	return process


def kill_worker(worker: subprocess.Popen) -> None:
	"""SIGKILL a worker and its work horses: RQ runs each job in a forked child that starts a
	session of its own, so killing the worker's process group alone would leave the job running."""
	import psutil

	try:
		parent = psutil.Process(worker.pid)
		children = parent.children(recursive=True)
	except psutil.NoSuchProcess:
		parent, children = None, []
	# the worker first: alive, it would fork a horse for its next job while its horse dies
	for process in [parent, *children]:
		try:
			if process is not None:
				process.send_signal(signal.SIGKILL)
		except psutil.NoSuchProcess:
			pass
	worker.wait(10)
	# RQ would list it (idle, say) until its key expires minutes later; a later test that asks
	# whether a worker is free must not count it
	for registered in Worker.all(connection=get_redis_conn()):
		if registered.pid == worker.pid:
			registered.register_death()


def ready_workers(count: int, queue: str = "default") -> list[subprocess.Popen]:
	"""RQ workers on ``queue`` (comma-separated names), started, registered and idle before anything
	is timed: what is timed is the work measured, not how long a Frappe process takes to start nor
	the jobs that setting up (or a bare loop before) left queued."""
	queues = [get_queue(name) for name in queue.split(",")]
	processes = [start_worker(burst=False, queue=queue) for _ in range(count)]
	ready_by = time.monotonic() + 300
	while time.monotonic() < ready_by:
		workers = Worker.all(queue=queues[0])
		idle = len(workers) >= count and all(w.get_state() == WorkerStatus.IDLE for w in workers)
		if idle and not any(q.count for q in queues):
			break
		time.sleep(0.2)
	return processes


def stop_workers(processes: list[subprocess.Popen]) -> None:
	for process in processes:
		kill_worker(process)
	# the killed workers' jobs stay "started" until RQ's registry clean-up gives up on them;
	# meanwhile their job ids (a helper drain's slot of this minute) would look taken
	registry = get_queue("default").started_job_registry
	for job_id in registry.get_job_ids():
		registry.remove(job_id, delete_job=True)


_HELD_OPEN = """
import sys
import frappe
frappe.init(sys.argv[1], sites_path=".")
frappe.connect()
frappe.set_user("Administrator")
exec(sys.argv[2])
print("written", flush=True)
sys.stdin.readline()
frappe.db.commit()
print("committed", flush=True)
frappe.destroy()
"""


class HeldOpenTransaction:
	"""Python code run in a second connection to this site (its own process) whose transaction
	stays open until ``commit()``: a save that commits after saves made later."""

	def __init__(self, code: str, timeout: float = 60):
		import queue
		import threading

		self.timeout = timeout
		self.process = subprocess.Popen(
			[sys.executable, "-c", _HELD_OPEN, frappe.local.site, code],
			cwd=os.path.abspath(frappe.local.sites_path),
			stdin=subprocess.PIPE,
			stdout=subprocess.PIPE,
			stderr=subprocess.STDOUT,
			text=True,
		)
		atexit.register(lambda: self.process.poll() is None and self.process.kill())
		self.lines = queue.Queue()
		threading.Thread(target=lambda: [self.lines.put(x) for x in self.process.stdout], daemon=True).start()
		self._wait_for("written")

	def commit(self) -> None:
		self.process.stdin.write("\n")
		self.process.stdin.flush()
		self._wait_for("committed")
		self.process.wait(self.timeout)

	def close(self) -> None:
		"""Roll back (a test that failed half-way must not leave its locks to the clean-up)."""
		if self.process.poll() is None:
			self.process.kill()
			self.process.wait(self.timeout)

	def _wait_for(self, word: str) -> None:
		import queue

		seen = []
		deadline = time.monotonic() + self.timeout
		while time.monotonic() < deadline:
			try:
				line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
			except queue.Empty:
				break
			if line.strip() == word:
				return
			seen.append(line)
			if self.process.poll() is not None and self.lines.empty():
				break
		self.process.kill()
		raise RuntimeError(f"the second connection did not say {word!r}: {''.join(seen)[-2000:]}")


def make_api_user(email: str, roles: list[str]) -> tuple[str, str]:
	"""A committed user with API key and secret; returns (api_key, api_secret)."""
	if not frappe.db.exists("User", email):
		frappe.get_doc(
			{
				"doctype": "User",
				"email": email,
				"first_name": "Test",
				"send_welcome_email": 0,
				"user_type": "System User",
			}
		).insert(ignore_permissions=True)
	user = frappe.get_doc("User", email)
	user.add_roles(*roles)
	api_secret = frappe.generate_hash(length=15)
	user.api_key = user.api_key or frappe.generate_hash(length=15)
	user.api_secret = api_secret
	user.save(ignore_permissions=True)
	frappe.db.commit()
	return user.api_key, api_secret


# -- the site over HTTP ----------------------------------------------------------------------------
_server: dict = {}


def site_http(api_key: str | None = None, api_secret: str | None = None) -> tuple[str, requests.Session]:
	"""(base URL, session) for talking to the test site over real HTTP; starts gunicorn once."""
	if "url" not in _server:
		_server["url"] = _start_site_server()
	session = requests.Session()
	session.headers["Host"] = frappe.local.site  # the site is chosen by host name
	if api_key:
		session.headers["Authorization"] = f"token {api_key}:{api_secret}"
	return _server["url"], session


def serve_other_site(site: str) -> str:
	"""Another site of this bench over HTTP (Frappe's own server, bound to that site whatever the
	Host header says); returns its base URL."""
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		port = s.getsockname()[1]
	command = [sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", site]
	process = subprocess.Popen(
		[*command, "serve", "--port", str(port), "--noreload"],
		cwd=os.path.abspath(frappe.local.sites_path),
		stdout=subprocess.DEVNULL,
		stderr=subprocess.DEVNULL,
		start_new_session=True,
	)
	atexit.register(lambda: process.poll() is None and process.kill())
	return _wait_until_up(f"http://127.0.0.1:{port}", site, process)


def serve_desk() -> int:
	"""Every site of this bench with Desk's static assets (Frappe's own WSGI wrapper that serves
	/assets, as nginx does in production), on a free loopback port; returns the port. A browser
	reaches a site as http://SITE:PORT (Chromium sends *.localhost to 127.0.0.1)."""
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		port = s.getsockname()[1]
	server = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "2", "-t", "120"]
	process = subprocess.Popen(
		[*server, "frappe.app:application_with_statics()"],
		cwd=os.path.abspath(frappe.local.sites_path),
		stdout=subprocess.DEVNULL,
		stderr=subprocess.DEVNULL,
	)
	atexit.register(process.terminate)
	_wait_until_up(f"http://127.0.0.1:{port}", frappe.local.site, process)
	return port


def _wait_until_up(url: str, site: str, process: subprocess.Popen) -> str:
	deadline = time.monotonic() + 60
	while time.monotonic() < deadline:
		try:
			if requests.get(url + "/api/method/ping", headers={"Host": site}, timeout=5).ok:
				return url
		except requests.RequestException:  # not listening yet, or its first answer is slow
			time.sleep(0.2)
	process.terminate()
	raise RuntimeError(f"the web server of {site} did not start within 60 s")


def _start_site_server() -> str:
	with socket.socket() as s:
		s.bind(("127.0.0.1", 0))
		port = s.getsockname()[1]
	sites_path = os.path.abspath(frappe.local.sites_path)
	process = subprocess.Popen(
		[
			sys.executable,
			"-m",
			"gunicorn",
			"-b",
			f"127.0.0.1:{port}",
			"-w",
			"2",
			"-t",
			"120",
			"frappe.app:application",
		],
		cwd=sites_path,
		stdout=subprocess.DEVNULL,
		stderr=subprocess.DEVNULL,
	)
	atexit.register(process.terminate)
	return _wait_until_up(f"http://127.0.0.1:{port}", frappe.local.site, process)


def bench(*args: str) -> subprocess.CompletedProcess:
	"""``bench --site SITE erp-connect ARGS`` in a process of its own, as an operator runs it."""
	command = [sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", frappe.local.site]
	return subprocess.run(
		[*command, "erp-connect", *args],
		cwd=os.path.abspath(frappe.local.sites_path),
		capture_output=True,
		text=True,
		timeout=300,
	)
