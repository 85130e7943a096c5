"""Per-connector limits on the inbound API: calls per minute (429 with Retry-After) and request
size (413). Frappe's own rate limiter counts per endpoint and IP and sends no Retry-After, so the
count here is per connector, in a one-minute window in Redis."""

import math
import time

import frappe
from frappe import _

WINDOW_SECONDS = 60
MAX_REQUEST_BYTES = 10 * 1024 * 1024


class RateLimited(frappe.ValidationError):
	http_status_code = 429


class RequestTooLarge(frappe.ValidationError):
	http_status_code = 413


def check(connector: "frappe.Document") -> None:
	length = frappe.request.content_length if frappe.request else None
	if length and length > MAX_REQUEST_BYTES:
		raise RequestTooLarge(_("requests may be at most {0} MB").format(MAX_REQUEST_BYTES // (1024 * 1024)))
	limit = connector.rate_limit_per_minute
	if not limit:
		return
	now = time.time()
	key = frappe.cache.make_key(f"erp_connect:rate:{connector.name}:{int(now // WINDOW_SECONDS)}")
	pipe = frappe.cache.pipeline()
	pipe.incr(key)
	pipe.expire(key, WINDOW_SECONDS + 1)
	count = pipe.execute()[0]
	if count > limit:
		retry_after = math.ceil(WINDOW_SECONDS - now % WINDOW_SECONDS)
		frappe.local.erp_connect_retry_after = retry_after
		raise RateLimited(
			_("Connector {0} allows {1} calls a minute; try again in {2} s").format(
				connector.name, limit, retry_after
			)
		)


def add_retry_after(response, request) -> None:
	"""after_request hook: the 429 above says when to come back."""
	seconds = getattr(frappe.local, "erp_connect_retry_after", None)
	if seconds and response.status_code == 429:
		response.headers["Retry-After"] = str(seconds)
