"""PosClient against an in-memory fake of erp_connect.api.pos (no Frappe).

The fake keeps the server's promises: idempotent by (terminal, client_id), operations applied "in the
background" (push answers accepted, results later answers applied), paged pull with a resync switch, and
scripted failures (an HTTP status, or a connection dropped after the ops were stored).
"""

import json
import socket
import sqlite3
import threading
import uuid
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from erp_connect.client.pos import (
	API_PATH,
	MAX_BATCH,
	AuthError,
	PermanentError,
	PosClient,
	Uuid7,
	backoff_delay,
)
from erp_connect.engine import pos_rules

API_KEY, API_SECRET, TERMINAL = "key", "secret", "POS-1"
KNOWN_ITEMS = {"PEN", "INK", "PAD"}


class FakePosServer:
	def __init__(self):
		self.lock = threading.Lock()
		self.calls = []  # (method, body) of every request that reached the server
		self.ledger = {}  # (terminal, client_id) -> {"op": ..., "result": ...}
		self.arrivals = []  # client_ids in the order they were first stored
		self.documents = []  # one name per applied operation
		self.script = []  # what to do with the next requests: "drop" or (status, headers)
		self.changes = []  # master data change log: (type, key, data or None for a deletion)
		self.force_resync = False
		self.bootstraps = 0
		self.config = {
			"company": "Demo Co",
			"warehouse": "Stores - DC",
			"price_list": "Standard Selling",
			"currency": "EUR",
			"customer_group": "Individual",
			"territory": "All Territories",
			"payment_modes": [{"mode_of_payment": "Cash", "default": 1}],
			"taxes": [],
		}
		self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
		self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
		threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()

	def stop(self):
		self.httpd.shutdown()
		self.httpd.server_close()

	def calls_to(self, method):
		return [body for name, body in self.calls if name == method]

	def _handler(self):
		server = self

		class Handler(BaseHTTPRequestHandler):
			def do_POST(self):
				method = self.path.removeprefix(API_PATH)
				body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
				with server.lock:
					server.calls.append((method, body))
					step = server.script.pop(0) if server.script else None
					if self.headers["Authorization"] != f"token {API_KEY}:{API_SECRET}":
						step = (401, {})
					if step == "drop":
						if method == "push":
							server.push(body)  # stored on the server, but the answer never arrives
						self.close_connection = True
						return
					if step:
						return self.reply(step[0], {"exc_type": "Scripted", "exception": "scripted"}, step[1])
					self.reply(200, {"message": getattr(server, method)(body)})

			def reply(self, status, payload, headers=None):
				data = json.dumps(payload).encode()
				self.send_response(status)
				for name, value in (headers or {}).items():
					self.send_header(name, value)
				self.send_header("Content-Type", "application/json")
				self.send_header("Content-Length", str(len(data)))
				self.end_headers()
				self.wfile.write(data)

			def log_message(self, *args):
				pass

		return Handler

	# -- the protocol --------------------------------------------------------------------------------

	def bootstrap(self, body):
		self.bootstraps += 1
		self.force_resync = False
		return {"config": dict(self.config), "cursor": None}

	def pull(self, body):
		cursor = body["cursor"]
		if cursor is not None and self.force_resync:
			return {
				"records": [],
				"deleted": [],
				"cursor": cursor,
				"has_more": False,
				"full_resync_required": True,
			}
		start = int(cursor or 0)
		page = self.changes[start : start + body["limit"]]
		end = start + len(page)
		return {
			"records": [{"type": t, "key": k, "data": d} for t, k, d in page if d is not None],
			"deleted": [{"type": t, "key": k} for t, k, d in page if d is None],
			"cursor": str(end),
			"has_more": end < len(self.changes),
			"full_resync_required": False,
		}

	def push(self, body):
		assert len(body["operations"]) <= MAX_BATCH
		results = []
		for op in body["operations"]:
			key = (body["terminal"], op.get("client_id"))
			if key in self.ledger:
				results.append(dict(self.ledger[key]["result"]))
				continue
			error = self.malformed(op)
			if error:
				results.append(
					{"client_id": op.get("client_id"), "status": "rejected", "name": None, "error": error}
				)
				continue
			result = {"client_id": op["client_id"], "status": "accepted", "name": None, "error": None}
			self.ledger[key] = {"op": op, "result": result}
			self.arrivals.append(op["client_id"])
			results.append(dict(result))
		return {"results": results, "accepted": sum(r["status"] == "accepted" for r in results)}

	def results(self, body):
		self.apply_accepted()  # the background worker has caught up by the time anyone asks
		unknown = {"status": "unknown", "name": None, "error": None}
		return {
			"results": [
				dict(self.ledger[(body["terminal"], cid)]["result"])
				if (body["terminal"], cid) in self.ledger
				else {"client_id": cid, **unknown}
				for cid in body["client_ids"]
			]
		}

	@staticmethod
	def malformed(op):
		if op.get("type") not in (
			"customer",
			"sales_invoice",
			"stock_adjustment",
			"shift_open",
			"shift_close",
		):
			return "unknown type"
		if datetime.fromisoformat(op["timestamp"]).tzinfo is None:
			return "timestamp has no timezone"
		data = op["data"]
		if op["type"] == "stock_adjustment" and not data.get("item_code"):
			return "item_code is required"
		if op["type"] == "sales_invoice" and not data.get("items"):
			return "items are required"
		return None

	def apply_accepted(self):
		names = {cid: entry["result"]["name"] for (_t, cid), entry in self.ledger.items()}
		for client_id in self.arrivals:
			entry = self.ledger[(TERMINAL, client_id)]
			if entry["result"]["status"] != "accepted":
				continue
			op, error = entry["op"], None
			data = op["data"]
			for ref in ("customer_client_id", "return_against_client_id", "shift_client_id"):
				if data.get(ref) and not names.get(data[ref]):
					error = f"{ref} {data[ref]} is not applied"
			missing = [
				line["item_code"] for line in data.get("items", []) if line["item_code"] not in KNOWN_ITEMS
			]
			if missing:
				error = f"Item {missing[0]} not found"
			if error:
				entry["result"].update(status="failed", error=error)
				continue
			prefix = {
				"customer": "CUST",
				"sales_invoice": "PSINV" if data.get("shift_client_id") else "SINV",
				"stock_adjustment": "MAT-STE",
				"shift_open": "POS-OPE",
				"shift_close": "POS-CLO",
			}[op["type"]]
			name = f"{prefix}-{len(self.documents) + 1:04d}"
			self.documents.append(name)
			names[client_id] = name
			entry["result"].update(status="applied", name=name)


class FakeClock:
	def __init__(self, now=1_750_000_000.0):
		self.now = now

	def __call__(self):
		return self.now

	def sleep(self, seconds):
		self.now += seconds


@pytest.fixture
def server():
	fake = FakePosServer()
	yield fake
	fake.stop()


@pytest.fixture
def clock():
	return FakeClock()


@pytest.fixture
def make_client(server, clock, tmp_path):
	clients = []

	def make(url=None, secret=API_SECRET):
		client = PosClient(
			url or server.url,
			API_KEY,
			secret,
			TERMINAL,
			str(tmp_path / "pos.sqlite"),
			timeout=5,
			clock=clock,
			sleep=clock.sleep,
			rand=lambda: 0.0,  # no jitter: exact delays
		)
		clients.append(client)
		return client

	yield make
	for client in clients:
		client.close()


def closed_port_url():
	with socket.socket() as sock:
		sock.bind(("127.0.0.1", 0))
		return f"http://127.0.0.1:{sock.getsockname()[1]}"


def sale(client, item_code="PEN", qty=2, rate=1.5, **customer):
	return client.record_sale(
		[{"item_code": item_code, "qty": qty, "rate": rate}],
		[{"mode_of_payment": "Cash", "amount": qty * rate}],
		**customer,
	)


def pushed_ids(server):
	return [op["client_id"] for body in server.calls_to("push") for op in body["operations"]]


# -- push / poll -------------------------------------------------------------------------------------


def test_a_shift_opened_and_closed_offline_names_its_sales(server, make_client, tmp_path):
	client = make_client(url=closed_port_url())
	before = sale(client)  # no shift open: the sale names none
	with pytest.raises(ValueError, match="no shift is open"):
		client.close_shift([])
	opened = client.open_shift([{"mode_of_payment": "Cash", "amount": 50}])
	with pytest.raises(ValueError, match="already open"):
		client.open_shift([])
	assert client.current_shift() == opened
	during = [
		sale(client),
		client.record_return(
			[{"item_code": "PEN", "qty": 1, "rate": 1.5}], [], return_against_client_id=before
		),
	]
	closed = client.close_shift([{"mode_of_payment": "Cash", "amount": 52.5}])
	after = sale(client)
	assert client.current_shift() is None
	data = {op["client_id"]: op["data"] for op in client.operations()}
	assert "shift_client_id" not in data[before] and "shift_client_id" not in data[after]
	assert [data[c]["shift_client_id"] for c in during] == [opened, opened]
	assert data[opened] == {"opening_amounts": [{"mode_of_payment": "Cash", "amount": 50.0}]}
	assert data[closed] == {
		"shift_client_id": opened,
		"closing_amounts": [{"mode_of_payment": "Cash", "amount": 52.5}],
	}
	# the open shift survives a restart of the app
	client.close()
	again = make_client()
	assert again.current_shift() is None
	reopened = again.open_shift([])
	again.close()
	assert make_client().current_shift() == reopened

	synced = make_client()
	synced.sync()
	assert [synced.operation(c)["name"].split("-")[0] for c in (opened, *during, closed)] == [
		"POS",
		"PSINV",
		"PSINV",
		"POS",
	]


def test_ops_recorded_while_offline_are_sent_exactly_once(server, clock, make_client):
	client = make_client(url=closed_port_url())
	customer = client.record_customer("Ann", mobile_no="0123")
	ids = [customer, sale(client, customer_client_id=customer), sale(client, "INK", 1, 4.0)]
	ids.append(client.record_stock_adjustment("PAD", -1, reason="damaged"))
	ids.append(
		client.record_return(
			[{"item_code": "INK", "qty": 1, "rate": 4.0}], [], return_against_client_id=ids[2]
		)
	)

	report = client.sync()
	assert report["ok"] is False and "cannot reach" in report["error"] and report["pending"] == 5
	assert server.calls == []

	client.base_url = server.url
	clock.sleep(report["retry_in"])
	report = client.sync()
	assert report["ok"] and report["pushed"] == {"accepted": 5} and report["polled"] == {"applied": 5}
	assert client.pending() == 0
	assert pushed_ids(server) == ids and server.arrivals == ids
	assert set(server.ledger) == {(TERMINAL, cid) for cid in ids}
	assert len(server.documents) == 5
	assert [client.operation(cid)["name"] for cid in ids] == [
		"CUST-0001",
		"SINV-0002",
		"SINV-0003",
		"MAT-STE-0004",
		"SINV-0005",
	]
	returned = server.ledger[(TERMINAL, ids[4])]["op"]["data"]
	assert returned["is_return"] and returned["items"][0]["qty"] == -1

	client.sync()  # nothing left to push or poll
	assert len(server.calls_to("push")) == 1 and len(server.calls_to("results")) == 1


def test_repush_after_dropped_connection_duplicates_nothing(server, clock, make_client):
	client = make_client()
	ids = [sale(client) for _ in range(3)]
	server.script = ["drop"]

	report = client.sync()
	assert not report["ok"] and client.pending() == 3
	assert server.arrivals == ids  # the server did store them
	assert all(client.operation(cid)["status"] == "pending" for cid in ids)

	clock.sleep(report["retry_in"])
	assert client.sync()["ok"]
	assert pushed_ids(server) == ids + ids  # sent twice ...
	assert server.arrivals == ids and len(server.documents) == 3  # ... stored and applied once
	assert [client.operation(cid)["attempts"] for cid in ids] == [2, 2, 2]
	assert {client.operation(cid)["status"] for cid in ids} == {"applied"}


def test_batches_keep_recorded_order(server, make_client):
	client = make_client()
	ids = [sale(client, qty=i + 1) for i in range(5)]
	assert client.push(batch_size=2) == {"accepted": 5}
	assert [[op["client_id"] for op in body["operations"]] for body in server.calls_to("push")] == [
		ids[0:2],
		ids[2:4],
		ids[4:5],
	]
	assert [op["client_id"] for op in client.operations()] == ids


def test_rejected_and_failed_are_final_and_not_resent(server, make_client):
	client = make_client()
	rejected = client.record_stock_adjustment("", 1)
	failed = sale(client, "GHOST")
	good = sale(client)
	assert client.sync()["pending"] == 0
	assert client.operation(rejected)["status"] == "rejected"
	assert client.operation(rejected)["error"] == "item_code is required"
	assert client.operation(failed)["status"] == "failed"
	assert client.operation(failed)["error"] == "Item GHOST not found"
	assert client.operation(good)["status"] == "applied"
	client.sync()
	assert len(server.calls_to("push")) == 1


def test_an_op_the_server_lost_is_pushed_again(server, make_client):
	client = make_client()
	client_id = sale(client)
	client.push()
	del server.ledger[(TERMINAL, client_id)]
	server.arrivals.clear()
	assert client.poll() == {"unknown": 1}
	assert client.operation(client_id)["status"] == "pending"
	client.sync()
	assert client.operation(client_id)["status"] == "applied" and pushed_ids(server) == [client_id, client_id]


# -- backoff and errors ------------------------------------------------------------------------------


def test_retry_after_is_honoured_and_survives_a_restart(server, clock, make_client):
	client = make_client()
	sale(client)
	server.script = [(503, {"Retry-After": "30"})]
	report = client.sync()
	assert not report["ok"] and report["retry_in"] == 30 and "HTTP 503" in report["error"]

	clock.sleep(29)
	restarted = make_client()  # same SQLite file
	for c in (client, restarted):
		assert c.sync() == {"ok": False, "skipped": "backoff", "retry_in": 1, "pending": 1}
	assert len(server.calls) == 1  # nothing went out during the backoff

	clock.sleep(1)
	assert restarted.sync()["ok"] and restarted.pending() == 0


def test_backoff_doubles_then_resets_after_success(server, clock, make_client):
	client = make_client()
	sale(client)
	server.script = ["drop", "drop", (502, {}), (429, {})]
	for expected in (1, 2, 4, 8):
		report = client.sync()
		assert report["retry_in"] == expected
		clock.sleep(expected - 0.5)
		assert client.sync()["skipped"] == "backoff"
		clock.sleep(0.5)
	assert client.sync()["ok"] and client.next_attempt_at() == 0
	server.script = ["drop"]
	sale(client)
	assert client.sync()["retry_in"] == 1  # counting starts again


def test_backoff_delay_is_capped_and_jittered():
	assert [backoff_delay(n, lambda: 0.0) for n in (1, 2, 3, 9, 10, 500)] == [1, 2, 4, 256, 300, 300]
	assert backoff_delay(3, lambda: 0.999) == pytest.approx(4 * 0.8, abs=0.01)


def test_sync_until_idle_sleeps_through_backoffs(server, clock, make_client):
	client = make_client()
	sale(client)
	server.script = ["drop", (503, {"Retry-After": "5"})]
	start = clock.now
	assert client.sync_until_idle(timeout=60)["pending"] == 0
	assert clock.now - start == 6 and len(server.documents) == 1


@pytest.mark.parametrize("scripted", [(401, {}), (403, {})])
def test_auth_error_is_raised_and_leaves_ops_alone(server, make_client, scripted):
	client = make_client()
	client_id = sale(client)
	server.script = [scripted]
	with pytest.raises(AuthError, match=f"HTTP {scripted[0]}.*API key"):
		client.sync()
	op = client.operation(client_id)
	assert (op["status"], op["error"], client.next_attempt_at()) == ("pending", None, 0)
	assert client.sync()["ok"] and client.operation(client_id)["status"] == "applied"


def test_wrong_secret_is_an_auth_error(server, make_client):
	client = make_client(secret="wrong")
	sale(client)
	with pytest.raises(AuthError):
		client.sync()
	assert client.pending() == 1 and server.ledger == {}


@pytest.mark.parametrize("status", [400, 404, 417, 422])
def test_permanent_error_is_raised_without_failing_ops(server, make_client, status):
	client = make_client()
	client_id = sale(client)
	server.script = [(status, {})]
	with pytest.raises(PermanentError, match=f"HTTP {status}"):
		client.sync()
	assert client.operation(client_id)["status"] == "pending" and client.next_attempt_at() == 0


# -- pull --------------------------------------------------------------------------------------------

ITEM_PEN = {"item_code": "PEN", "item_name": "Pen", "disabled": 0, "barcodes": ["111", "112"]}
ITEM_INK = {"item_code": "INK", "item_name": "Ink", "disabled": 0, "barcodes": ["222"]}


def test_pull_applies_pages_deletions_and_saves_the_cursor(server, make_client, tmp_path):
	client = make_client()
	client.bootstrap()
	assert client.config()["company"] == "Demo Co"
	server.changes = [
		("item", "PEN", ITEM_PEN),
		("item", "INK", ITEM_INK),
		("price", "PEN|Nos", {"item_code": "PEN", "uom": "Nos", "price_list_rate": 1.5}),
		("customer", "CUST-9", {"name": "CUST-9", "customer_name": "Bo", "disabled": 0}),
		("stock", "PEN", {"item_code": "PEN", "actual_qty": 5}),
		("item", "INK", None),
		("stock", "PEN", {"item_code": "PEN", "actual_qty": 7}),
	]
	assert client.pull(limit=3) == 7
	assert [body["cursor"] for body in server.calls_to("pull")] == [None, "0", "3", "6"]
	assert client.item_by_barcode("112")["item_name"] == "Pen"
	assert client.item_by_barcode("222") is None and [i["item_code"] for i in client.items()] == ["PEN"]
	assert (client.price("PEN"), client.stock("PEN"), client.stock("INK")) == (1.5, 7, None)

	db = sqlite3.connect(tmp_path / "pos.sqlite")
	assert db.execute("SELECT value FROM state WHERE key = 'cursor'").fetchone() == ('"7"',)
	assert db.execute("SELECT customer_name FROM customers WHERE key = 'CUST-9'").fetchone() == ("Bo",)

	make_client().pull()  # a restarted app goes on from the saved cursor
	assert server.calls_to("pull")[-1]["cursor"] == "7"


def test_a_page_and_its_cursor_are_committed_together(server, make_client, tmp_path, monkeypatch):
	client = make_client()
	client.bootstrap()
	server.changes = [("item", "PEN", ITEM_PEN)]
	save_state = client._set_state

	def crash_on_cursor(key, value):
		if key == "cursor":
			raise OSError("power cut")
		save_state(key, value)

	monkeypatch.setattr(client, "_set_state", crash_on_cursor)
	with pytest.raises(OSError):
		client.pull()
	db = sqlite3.connect(tmp_path / "pos.sqlite")  # what survives on disk
	assert db.execute("SELECT COUNT(*) FROM items").fetchone() == (0,)
	assert db.execute("SELECT COUNT(*) FROM item_barcodes").fetchone() == (0,)
	assert db.execute("SELECT value FROM state WHERE key = 'cursor'").fetchone() == ('"0"',)  # from bootstrap

	monkeypatch.undo()
	assert client.pull() == 1 and client.item_by_barcode("111")["item_code"] == "PEN"


def test_full_resync_replaces_local_master_data_and_config(server, make_client):
	client = make_client()
	server.changes = [("item", "PEN", ITEM_PEN), ("item", "INK", ITEM_INK)]
	client.bootstrap()
	outbox_op = sale(client)
	assert [i["item_code"] for i in client.items()] == ["INK", "PEN"]

	server.changes = [("item", "PAD", {"item_code": "PAD", "item_name": "Pad", "barcodes": ["333"]})]
	server.config["price_list"] = "Wholesale"
	server.force_resync = True
	assert client.pull() == 1
	assert [i["item_code"] for i in client.items()] == ["PAD"]
	assert client.item_by_barcode("111") is None and client.item_by_barcode("333")["item_name"] == "Pad"
	assert client.config()["price_list"] == "Wholesale" and server.bootstraps == 2
	assert client.operation(outbox_op)["status"] == "pending"  # the outbox is not master data


# -- ids ---------------------------------------------------------------------------------------------


def test_uuid7_ids_are_unique_time_ordered_and_well_formed():
	new_id = Uuid7()
	ms = 1_750_000_000_000
	ids = [new_id(ms + i // 100) for i in range(1000)]  # 100 ids per millisecond
	assert len(set(ids)) == 1000 and sorted(ids) == ids
	parsed = [uuid.UUID(i) for i in ids]
	assert {(u.version, u.variant) for u in parsed} == {(7, uuid.RFC_4122)}
	assert [u.int >> 80 for u in parsed[::100]] == [ms + i for i in range(10)]
	assert new_id(ms) > ids[-1]  # a clock stepping back does not break the order
	assert Counter(i[14] for i in ids) == {"7": 1000}


def test_recorded_ops_carry_uuid7_ids_and_timezone_aware_timestamps(make_client, clock):
	clock.now = 2_000_000_000.0  # later than any other test, so the shared generator has not been there yet
	client = make_client()
	first = client.record_customer("Ann")
	clock.sleep(0.001)
	second = client.record_customer("Bo")
	assert first < second and uuid.UUID(first).int >> 80 == int(clock.now * 1000) - 1
	timestamp = datetime.fromisoformat(client.operation(first)["timestamp"])
	assert timestamp.tzinfo is not None and timestamp.timestamp() == pytest.approx(clock.now - 0.001)


# -- demo --------------------------------------------------------------------------------------------


def test_demo_sells_offline_and_syncs_everything(server, tmp_path, capsys):
	from erp_connect.client import demo

	server.changes = [
		("item", "PEN", ITEM_PEN),
		("item", "INK", ITEM_INK),
		("price", "PEN", {"item_code": "PEN", "uom": "Nos", "price_list_rate": 1.5}),
		("price", "INK", {"item_code": "INK", "uom": "Nos", "price_list_rate": 4.0}),
	]
	argv = ["--url", server.url, "--host-header", "test.localhost", "--api-key", API_KEY]
	argv += ["--api-secret", API_SECRET, "--terminal", TERMINAL, "--db", str(tmp_path / "demo.sqlite")]
	assert demo.main([*argv, "--sales", "3", "--seed", "1"]) == 0
	assert len(server.arrivals) == len(server.documents) == 6  # 3 sales, customer, its sale, a return
	assert "'applied': 6" in capsys.readouterr().out


def test_an_item_dropped_by_the_feed_takes_its_prices_and_stock_with_it(server, make_client):
	client = make_client()
	client.bootstrap()
	serials = {"item_code": "PEN", "actual_qty": 2, "serial_nos": ["P-1", "P-2"], "batches": None}
	server.changes = [
		("item", "PEN", ITEM_PEN),
		("item", "INK", ITEM_INK),
		("price", "PEN|Nos", {"item_code": "PEN", "uom": "Nos", "price_list_rate": 1.5}),
		("price", "INK|Nos", {"item_code": "INK", "uom": "Nos", "price_list_rate": 3}),
		("stock", "PEN", serials),
		("stock", "INK", {"item_code": "INK", "actual_qty": 4, "batches": [{"batch_no": "B1", "qty": 4}]}),
	]
	client.pull()
	assert client.serial_nos("PEN") == ["P-1", "P-2"] and client.batches("INK") == [
		{"batch_no": "B1", "qty": 4}
	]
	server.changes.append(("item", "PEN", None))  # it left the profile's item groups
	client.pull()
	assert [i["item_code"] for i in client.items()] == ["INK"]
	assert (client.price("PEN"), client.stock("PEN"), client.serial_nos("PEN")) == (None, None, [])
	assert (client.price("INK"), client.stock("INK")) == (3, 4)


def test_a_sale_carries_what_the_till_charged_and_sold(server, make_client):
	client = make_client()
	sale = client.record_sale(
		[
			{"item_code": "PEN", "qty": 2, "rate": 9, "price_list_rate": 10, "discount_percentage": 10},
			{"item_code": "CAM", "qty": 1, "rate": 300, "serial_no": ("C-1",)},
		],
		[{"mode_of_payment": "Cash", "amount": 348.0}],
		taxes=[{"account_head": "VAT - DC", "amount": 30}],
		coupon_code="SUMMER",
		loyalty_points=20,
	)
	[op] = [o for o in client.operations() if o["client_id"] == sale]
	data = op["data"]
	assert data["items"][0] == {
		"item_code": "PEN",
		"qty": 2.0,
		"rate": 9.0,
		"price_list_rate": 10,
		"discount_percentage": 10,
	}
	assert data["items"][1]["serial_no"] == ["C-1"]
	assert (data["coupon_code"], data["loyalty_points"], data["taxes"][0]["amount"]) == ("SUMMER", 20, 30)
	assert (
		pos_rules.problems(
			{"client_id": sale, "type": "sales_invoice", "timestamp": op["timestamp"], "data": data}
		)
		== []
	)
