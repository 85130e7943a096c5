"""Sell offline on a POS terminal, then reconnect and sync with an ERPNext site running erp_connect.

	python -m erp_connect.client.demo --url http://127.0.0.1:8000 --host-header test.localhost \\
		--api-key K --api-secret S --terminal T --db /tmp/pos.sqlite --sales 20

Bootstraps and pulls master data, goes "offline" (points the client at a port nobody listens on),
records sales, a new customer with a sale, and a return against one of the offline sales, then
reconnects, syncs until nothing is pending and prints what happened.
"""

import argparse
import random
import socket
import sys
import time
from collections import Counter

import requests

from erp_connect.client.pos import PosClient, PosError


def main(argv: list[str] | None = None) -> int:
	args = parse_args(argv)
	session = requests.Session()
	if args.host_header:
		session.headers["Host"] = args.host_header  # the Frappe dev server picks the site by host name
	client = PosClient(args.url, args.api_key, args.api_secret, args.terminal, args.db, session=session)
	try:
		return run(client, args)
	except PosError as exc:
		print(f"error: {exc}", file=sys.stderr)
		return 2
	finally:
		client.close()


def run(client: PosClient, args: argparse.Namespace) -> int:
	config = client.bootstrap()
	catalogue = [(item, client.price(item["item_code"])) for item in client.items()]
	catalogue = [(item, rate) for item, rate in catalogue if rate]
	if not catalogue:
		print("no priced items were pulled: nothing to sell", file=sys.stderr)
		return 1
	modes = config.get("payment_modes") or [{"mode_of_payment": "Cash"}]
	mode = next((m for m in modes if m.get("default")), modes[0])["mode_of_payment"]
	print(
		f"bootstrapped {args.terminal}: {len(catalogue)} priced items, {config.get('company')}, paid by {mode}"
	)

	client.base_url = closed_port_url()  # offline from here on
	rng = random.Random(args.seed)
	taxes = config.get("taxes") or []
	sales = [record_random_sale(client, catalogue, mode, taxes, rng) for _ in range(args.sales)]
	customer_id = client.record_customer(f"POS Demo Customer {time.strftime('%Y%m%d-%H%M%S')}")
	sales.append(record_random_sale(client, catalogue, mode, taxes, rng, customer_client_id=customer_id))
	sale_id, lines = sales[0]
	returned = [{**lines[0], "qty": 1}]
	refund = grand_total(returned[0]["rate"], taxes)
	return_id = client.record_return(
		returned, [{"mode_of_payment": mode, "amount": refund}], return_against_client_id=sale_id
	)
	recorded = {customer_id, return_id, *(client_id for client_id, _lines in sales)}
	offline = client.sync()  # fails without raising and starts a backoff
	print(f"offline: recorded {len(recorded)} operations; sync failed, retry in {offline['retry_in']:.1f} s")

	client.base_url = args.url.rstrip("/")  # back online
	report = client.sync_until_idle(timeout=args.timeout)
	print(
		f"reconnected: pushed {report.get('pushed')}, polled {report.get('polled')}, pending {report['pending']}"
	)

	operations = [op for op in client.operations() if op["client_id"] in recorded]
	print("operations by status:", dict(Counter(op["status"] for op in operations)))
	for op in operations:
		outcome = op["name"] or op["error"] or ""
		print(f"  {op['type']:<17} {op['client_id']}  {op['status']:<9} {outcome}")
	return 0 if all(op["status"] == "applied" for op in operations) else 1


def record_random_sale(client, catalogue, mode, taxes, rng, **customer) -> tuple[str, list[dict]]:
	picks = rng.sample(catalogue, k=min(len(catalogue), rng.randint(1, 3)))
	lines = [{"item_code": item["item_code"], "qty": rng.randint(1, 3), "rate": rate} for item, rate in picks]
	total = grand_total(sum(line["qty"] * line["rate"] for line in lines), taxes)
	client_id = client.record_sale(lines, [{"mode_of_payment": mode, "amount": total}], **customer)
	return client_id, lines


def grand_total(net_total: float, taxes: list[dict]) -> float:
	"""Net total plus the config's "On Net Total" taxes that are not already included in the rates."""
	rate = sum(
		float(tax.get("rate") or 0)
		for tax in taxes
		if tax.get("charge_type") == "On Net Total" and not tax.get("included_in_print_rate")
	)
	return round(net_total * (1 + rate / 100), 2)


def closed_port_url() -> str:
	"""A local URL nobody listens on: plays the part of a dead network."""
	with socket.socket() as sock:
		sock.bind(("127.0.0.1", 0))
		return f"http://127.0.0.1:{sock.getsockname()[1]}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("--url", required=True, help="site URL, e.g. http://127.0.0.1:8000")
	parser.add_argument("--host-header", help="Host header to send (picks the site on a bench dev server)")
	parser.add_argument("--api-key", required=True)
	parser.add_argument("--api-secret", required=True)
	parser.add_argument("--terminal", required=True, help="POS terminal name on the server")
	parser.add_argument("--db", required=True, help="local SQLite file")
	parser.add_argument("--sales", type=int, default=20, help="offline sales to record")
	parser.add_argument("--seed", type=int, default=None, help="random seed for repeatable sales")
	parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for the sync to finish")
	return parser.parse_args(argv)


if __name__ == "__main__":
	sys.exit(main())
