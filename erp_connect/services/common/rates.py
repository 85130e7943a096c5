"""Counting requests in fixed one-window buckets in Redis, shared by every worker: the inbound
API's calls per minute and the requests a pull sends to a remote."""

import time

import frappe


def count_in_window(name: str, window_seconds: int) -> tuple[int, float]:
	"""Count one more in the current window of ``name``; returns the count so far in it and the
	seconds until the window ends."""
	now = time.time()
	window = int(now // window_seconds)
	key = frappe.cache.make_key(f"erp_connect:rate:{name}:{window_seconds}:{window}")
	pipe = frappe.cache.pipeline()
	pipe.incr(key)
	pipe.expire(key, window_seconds + 1)
	count = pipe.execute()[0]
	return count, (window + 1) * window_seconds - now
