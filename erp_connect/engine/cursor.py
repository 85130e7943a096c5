"""Opaque keyset cursors for change feeds.

A feed is read in (modified, name) order; the cursor holds the last position seen for documents
and for deletions. Equal timestamps across a page boundary lose nothing, because the next page
starts strictly after the (modified, name) pair, not after the timestamp alone.
"""

import base64
import json
from dataclasses import asdict, dataclass

VERSION = 1


class InvalidCursor(ValueError):
	pass


@dataclass(frozen=True)
class Cursor:
	modified: str = ""  # documents: last (modified, name) returned
	name: str = ""
	deleted_at: str = ""  # tombstones: last (creation, name) returned
	deleted_name: str = ""

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
			if data.pop("v") != VERSION or set(data) != set(cls.__dataclass_fields__):
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
