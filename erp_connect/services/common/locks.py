"""Named database locks (MariaDB GET_LOCK): shared by every worker on every machine that uses the
database, and released by the server when a killed worker's connection goes away."""

import contextlib
import hashlib
from collections.abc import Iterator

import frappe


def lock_name(kind: str, subject: str) -> str:
	"""A lock name within MariaDB's 64 characters, whatever the subject's length."""
	return f"erp_connect_{kind}_" + hashlib.sha1(subject.encode()).hexdigest()[:32]


@contextlib.contextmanager
def named_lock(kind: str, subject: str, wait_seconds: float) -> Iterator[bool]:
	"""Hold the lock for the block; yields whether it was taken within ``wait_seconds``."""
	name = lock_name(kind, subject)
	taken = bool(frappe.db.sql("select get_lock(%s, %s)", (name, wait_seconds))[0][0])
	try:
		yield taken
	finally:
		if taken:
			frappe.db.sql("select release_lock(%s)", name)


def lock_until_transaction_ends(kind: str, subject: str, wait_seconds: float) -> bool:
	"""Take the lock and release it when this transaction commits or rolls back; whether it was
	taken within ``wait_seconds``."""
	name = lock_name(kind, subject)
	if not frappe.db.sql("select get_lock(%s, %s)", (name, wait_seconds))[0][0]:
		return False
	release = lambda: frappe.db.sql("select release_lock(%s)", name)  # noqa: E731
	frappe.db.after_commit.add(release)
	frappe.db.after_rollback.add(release)
	return True
