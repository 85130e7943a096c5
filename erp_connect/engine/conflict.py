"""Conflicts: a record that changed on both sides since it was last synced.

"Changed" is decided by content hashes kept per link at the last sync - what the remote sent and
what ERPNext held right after writing it - never by comparing timestamps from two clocks.
"""

import hashlib
import json

from erp_connect.engine.encoding import json_default

ERPNEXT_WINS, REMOTE_WINS, PARK = "ERPNext Wins", "Remote Wins", "Park for Review"
POLICIES = (ERPNEXT_WINS, REMOTE_WINS, PARK)

WRITE, SKIP, KEEP_ERPNEXT = "write", "skip", "keep_erpnext"


def content_hash(data) -> str:
	text = json.dumps(data, default=json_default, sort_keys=True, separators=(",", ":"))
	return hashlib.sha256(text.encode()).hexdigest()


def decide(policy: str, remote_changed: bool, erpnext_changed: bool) -> str:
	"""What to do with an incoming record: write it, skip it (nothing new), keep ERPNext's version,
	or park it for a person to decide."""
	if policy not in POLICIES:
		raise ValueError(f"unknown conflict policy {policy!r}")
	if not remote_changed:
		return SKIP
	if not erpnext_changed or policy == REMOTE_WINS:
		return WRITE
	return KEEP_ERPNEXT if policy == ERPNEXT_WINS else PARK
