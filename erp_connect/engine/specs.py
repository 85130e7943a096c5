"""What a rule is, as the flows read it: frozen values built from the rule's document in one
place (the Sync Rule and Pull Rule controllers), so no flow patches or re-derives them."""

from collections.abc import Mapping
from dataclasses import dataclass

from erp_connect.engine.mapping import FieldRule

WHOLE_DOCUMENT = "Whole Document"
MAPPED_FIELDS = "Mapped Fields"

# The fields a push rule reads: {field: None} for a whole value, {table: {row fields}} for a child
# table walked with []; None when the rule needs the whole document.
DocFields = Mapping[str, frozenset[str] | None] | None


@dataclass(frozen=True)
class PushSpec:
	"""A push rule: which document events of a doctype go to which connector, and how they look."""

	name: str
	connector: str
	doctype: str
	condition: str | None
	payload_mode: str
	field_rules: tuple[FieldRule, ...]
	doc_fields: DocFields
	dry_run: bool
	target_path: str
	http_method: str
	batch_size: int
	warehouses: tuple[str, ...] = ()  # a stock rule's warehouses (empty: all)

	@property
	def reads_documents(self) -> bool:
		"""Whether rendering needs the full document (or child rows), not just its own columns."""
		return self.doc_fields is None or any(v is not None for v in self.doc_fields.values())


@dataclass(frozen=True)
class InboundSpec:
	"""How external records become documents of one doctype: an inbound Sync Rule's field map, a
	Pull Rule's, or none (the records use ERPNext field names and carry their id at ``id``)."""

	external_id_path: str = "id"
	field_rules: tuple[FieldRule, ...] = ()
	conflict_policy: str | None = None  # pulls decide conflicts; API calls write what they are sent
	match_by_name: bool = False  # another Frappe site: the same name is the same document
	pull_rule: str | None = None
