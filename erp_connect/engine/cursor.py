"""Opaque keyset cursors for change feeds.

A feed is read in (modified, name) order; the cursor holds the last position seen for documents
and for deletions. Equal timestamps across a page boundary lose nothing, because the next page
starts strictly after the (modified, name) pair, not after the timestamp alone.

Late commits. Frappe sets ``modified`` when it saves, not when the transaction commits, so a slow
transaction can commit a stamp older than one already read. A feed is therefore read in passes:
the first page of a pass fixes a horizon, its start time minus SETTLE_SECONDS (longer than any
transaction may stay open), and pages follow strictly after the last position while ``has_more``
is true. When a pass ends, each position is pulled back to the horizon if it went past it
(``settle``), so the next pass reads everything after the horizon again. Whatever was not yet
committed when it was passed over has a stamp after the horizon and comes in the next pass;
records already returned may come again.

Access. A feed that runs with its caller's own permissions (a mobile app's people) keeps a
fingerprint of that access in the cursor (``access_fingerprint``: roles, User Permissions,
shares, the doctype's permission rules). When it no longer matches, what the caller may read has
changed, and documents may have left its view that no page would announce: the feed then asks
the client to drop its copy and read again from the start (``resync``).
"""

import base64
import hashlib
import json
from dataclasses import asdict, dataclass

VERSION = 3  # 2 added the horizon (version 1 is read as between passes), 3 the access
# longer than any transaction that saves documents stays open: web requests end at 120 s
# (gunicorn's timeout), jobs of the short and default queues at 300 s
SETTLE_SECONDS = 300


class InvalidCursor(ValueError):
	pass


@dataclass(frozen=True)
class Cursor:
	modified: str = ""  # documents: last (modified, name) returned
	name: str = ""
	deleted_at: str = ""  # tombstones: last (creation, name) returned
	deleted_name: str = ""
	horizon: str = ""  # the pass in progress: its start minus SETTLE_SECONDS; empty between passes
	access: str = ""  # the caller's access_fingerprint when the feed follows its permissions

	def encode(self) -> str:
		raw = json.dumps({"v": VERSION, **asdict(self)}, separators=(",", ":")).encode()
		return base64.urlsafe_b64encode(raw).decode().rstrip("=")

	@classmethod
	def decode(cls, token: str | None) -> "Cursor":
		if not token:
			return cls()
		try:
			padded = token + "=" * (-len(token) % 4)
			data = json.loads(base64.urlsafe_b64decode(padded.encode()))
			version = data.pop("v")
			if version in (1, 2):
				data.setdefault("horizon", "")
				data.setdefault("access", "")
			if version not in (1, 2, VERSION) or set(data) != set(cls.__dataclass_fields__):
				raise ValueError
			if not all(isinstance(v, str) for v in data.values()):
				raise ValueError
			return cls(**data)
		except (ValueError, TypeError, KeyError, AttributeError):
			raise InvalidCursor("the cursor is not one this API returned")


def after(
	rows: list[dict], key: tuple[str, str], limit: int
) -> tuple[list[dict], bool, tuple[str, str] | None]:
	"""Trim a page fetched with limit + 1 rows: (page, has_more, last key of the page)."""
	has_more = len(rows) > limit
	page = rows[:limit]
	last = (str(page[-1][key[0]]), str(page[-1][key[1]])) if page else None
	return page, has_more, last


def settle(position: tuple[str, str], horizon: str) -> tuple[str, str]:
	"""Where the next pass starts: the position reached, but not past the horizon (every name at the
	horizon's stamp is read again)."""
	return min(tuple(position), (horizon, ""))


def access_fingerprint(parts: dict[str, list]) -> str:
	"""A short digest of what decides which documents a caller may read, each part a list of
	rows in any order: equal fingerprints, equal access."""
	normal = {key: sorted(json.dumps(row, default=str) for row in rows) for key, rows in parts.items()}
	raw = json.dumps(normal, sort_keys=True, separators=(",", ":"))
	return hashlib.sha256(raw.encode()).hexdigest()[:24]
