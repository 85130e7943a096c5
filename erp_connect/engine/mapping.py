"""Field mapping: turn one record into another by a list of rules, in either direction.

A path is dotted (``customer.address.city``); one segment may end in ``[]`` to walk a list, so
``items[].item_code`` -> ``lines[].sku`` maps every child row. Each rule may transform the value
on the way. All problems of a record are collected and raised together, so a developer sees
every missing or malformed field at once.
"""

import datetime
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

NONE = "None"
VALUE_MAP = "Value Map"
DATE_FORMAT = "Date Format"
DATETIME_FORMAT = "Datetime Format"
ROUND = "Round"
CONSTANT = "Constant"
TEMPLATE = "Template"
EXTERNAL_ID_LINK = "External ID Link"  # option: the linked doctype; value: that record's external id
TRANSFORMS = (NONE, VALUE_MAP, DATE_FORMAT, DATETIME_FORMAT, ROUND, CONSTANT, TEMPLATE, EXTERNAL_ID_LINK)
NEEDS_OPTION = (VALUE_MAP, DATE_FORMAT, DATETIME_FORMAT, ROUND, CONSTANT, TEMPLATE, EXTERNAL_ID_LINK)

OUTBOUND = "out"  # ERPNext document -> external payload
INBOUND = "in"  # external payload -> ERPNext document

_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\[\])?$")

TemplateRenderer = Callable[[str, dict], str]
LinkResolver = Callable[[str, str], str]  # (doctype, external id) -> local name; raises ValueError


class MappingError(ValueError):
	def __init__(self, problems: list[str]):
		self.problems = problems
		super().__init__("; ".join(problems))


@dataclass(frozen=True)
class FieldRule:
	source: str
	target: str
	transform: str = NONE
	option: str | None = None
	required: bool = False


# -- checking rules (when a manager saves them) ---------------------------------------------------
def rule_problems(rule: FieldRule) -> list[str]:
	"""What is wrong with one rule, as sentences; empty when it is usable."""
	problems = []
	label = f"{rule.source or '(constant)'} -> {rule.target}"
	if rule.transform not in TRANSFORMS:
		return [f"{label}: unknown transform {rule.transform!r}"]
	if rule.transform != CONSTANT or rule.source:
		problems += [f"{label}: source {p}" for p in path_problems(rule.source)]
	problems += [f"{label}: target {p}" for p in path_problems(rule.target)]
	if rule.source and rule.target and _is_list_path(rule.source) != _is_list_path(rule.target):
		problems.append(f"{label}: use [] on both sides or on neither")
	if rule.transform in NEEDS_OPTION and not (rule.option or "").strip():
		problems.append(f"{label}: transform {rule.transform} needs an option")
	elif rule.transform == VALUE_MAP:
		try:
			if not isinstance(json.loads(rule.option), dict):
				raise ValueError
		except ValueError:
			problems.append(f'{label}: a value map must be a JSON object such as {{"Draft": "pending"}}')
	elif rule.transform == ROUND and not rule.option.strip().isdigit():
		problems.append(f"{label}: Round needs the number of decimals, e.g. 2")
	elif rule.transform in (DATE_FORMAT, DATETIME_FORMAT) and "%" not in rule.option:
		problems.append(f"{label}: a date format needs strftime codes such as %Y-%m-%d")
	return problems


def path_problems(path: str | None) -> list[str]:
	if not path:
		return ["is empty"]
	segments = path.split(".")
	if not all(_SEGMENT.match(s) for s in segments):
		return [f"{path!r} is not a dotted path of names (a segment may end in [])"]
	if sum(s.endswith("[]") for s in segments) > 1:
		return [f"{path!r} walks more than one list"]
	return []


# -- applying rules ------------------------------------------------------------------------------
def map_record(
	record: Mapping,
	rules: Sequence[FieldRule],
	direction: str = OUTBOUND,
	render_template: TemplateRenderer | None = None,
	resolve_link: LinkResolver | None = None,
) -> dict:
	"""Build the mapped record; MappingError lists every problem found."""
	out: dict = {}
	problems: list[str] = []
	helpers = (render_template, resolve_link)
	for rule in rules:
		try:
			if _is_list_path(rule.target):
				_map_list(record, rule, out, direction, helpers)
			else:
				value = _transform(_read(record, rule.source), rule, record, direction, helpers)
				_check_required(rule, value)
				_write(out, rule.target, value)
		except (MappingError, ValueError, TypeError, KeyError) as e:
			problems += e.problems if isinstance(e, MappingError) else [f"{rule.target}: {e}"]
	if problems:
		raise MappingError(problems)
	return out


def _map_list(record, rule, out, direction, helpers):
	rows = _read(record, rule.source.split("[]")[0]) if rule.source else None
	if rows is None:
		rows = []
	if not isinstance(rows, list):
		raise ValueError(f"{rule.source} is not a list")
	list_key, _, rest = rule.target.partition("[].")
	target_rows = _ensure_list(out, list_key, len(rows))
	field_path = rule.source.partition("[].")[2]
	problems = []
	for i, row in enumerate(rows):
		try:
			value = _read(row, field_path) if field_path else row
			value = _transform(value, rule, record, direction, helpers)
			_check_required(rule, value, f"{list_key}[{i}].{rest}")
			_write(target_rows[i], rest, value)
		except MappingError as e:
			problems += e.problems
		except (ValueError, TypeError) as e:
			problems.append(f"{list_key}[{i}].{rest}: {e}")
	if problems:
		raise MappingError(problems)


def _check_required(rule: FieldRule, value, where: str | None = None):
	if rule.required and (value is None or value == ""):
		raise MappingError([f"{where or rule.target}: required, but {rule.source or 'the value'} is empty"])


def read_path(record, path: str | None):
	"""The value at a dotted path, or None."""
	return _read(record, path)


def _read(record, path: str | None):
	if not path:
		return None
	value = record
	for segment in path.split("."):
		if not isinstance(value, Mapping):
			return None
		value = value.get(segment.removesuffix("[]"))
	return value


def _write(out: dict, path: str, value) -> None:
	*parents, last = path.split(".")
	node = out
	for segment in parents:
		node = node.setdefault(segment, {})
		if not isinstance(node, dict):
			raise ValueError(f"{path}: {segment} is already set to a value")
	node[last] = value


def _ensure_list(out: dict, path: str, length: int) -> list[dict]:
	*parents, last = path.split(".")
	node = out
	for segment in parents:
		node = node.setdefault(segment, {})
	rows = node.setdefault(last, [])
	while len(rows) < length:
		rows.append({})
	return rows


def _is_list_path(path: str | None) -> bool:
	return bool(path) and "[]" in path


# -- transforms ----------------------------------------------------------------------------------
def _transform(value, rule: FieldRule, record, direction: str, helpers: tuple):
	render_template, resolve_link = helpers
	t = rule.transform
	if t == NONE:
		return value
	if t == CONSTANT:
		return _constant(rule.option)
	if t == TEMPLATE:
		if render_template is None:
			raise ValueError("templates are not available here")
		return render_template(rule.option, {"value": value, "doc": record})
	if value is None or value == "":
		return value
	if t == VALUE_MAP:
		mapping = json.loads(rule.option)
		key = value if isinstance(value, str) else json.dumps(value)
		if key in mapping:
			return mapping[key]
		if "*" in mapping:
			return mapping["*"]
		raise ValueError(f"value {value!r} has no entry in the value map")
	if t == ROUND:
		return _round(value, int(rule.option))
	if t == EXTERNAL_ID_LINK:
		if resolve_link is None:
			raise ValueError("links by external id are not available here")
		return resolve_link(rule.option, str(value))
	if t in (DATE_FORMAT, DATETIME_FORMAT):
		return _format_date(value, rule.option, t == DATETIME_FORMAT, direction)
	raise ValueError(f"unknown transform {t!r}")


def _constant(option: str | None):
	try:
		return json.loads(option)
	except (TypeError, ValueError):
		return option


def _round(value, decimals: int):
	try:
		number = Decimal(str(value))
	except InvalidOperation:
		raise ValueError(f"{value!r} is not a number")
	rounded = number.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
	return int(rounded) if decimals == 0 else float(rounded)


def _format_date(value, fmt: str, with_time: bool, direction: str):
	if direction == INBOUND:
		parsed = datetime.datetime.strptime(str(value), fmt)
		return parsed.strftime("%Y-%m-%d %H:%M:%S") if with_time else parsed.strftime("%Y-%m-%d")
	if isinstance(value, str):
		value = datetime.datetime.fromisoformat(value)
	if isinstance(value, datetime.date | datetime.datetime):
		return value.strftime(fmt)
	raise ValueError(f"{value!r} is not a date")
