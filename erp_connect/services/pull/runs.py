"""Scheduled pulls: read a remote list page by page and upsert every record through the one write
path (Sync Link, mapping, per-record results, conflict policy).

Watermarks. A run asks for what changed since the rule's watermark. The next watermark is taken
when the run starts, minus the rule's overlap, and saved only after the last page is committed. For
another Frappe site it is the newest remote ``modified`` read, minus the overlap: that site's own
clock, which its filter compares with.

Streams. A pull rule on a stream connector (NATS JetStream) reads the rule's durable consumer
instead of pages: each batch's records are committed first and its messages acknowledged after,
so a run that dies in between leaves them to JetStream, which hands them out again after its ack
wait (the upsert then finds them unchanged). There is no watermark: the consumer is the position.

Resuming. Each page's records and the position of the next page are committed together, so a run
that is killed continues at the first page it had not committed: nothing is skipped, and a page
read twice is recognised as unchanged. Runs of one rule never overlap (a database lock, which dies
with a killed worker's connection).
"""

import contextlib
import datetime
import json
import time
import zoneinfo

import frappe
import requests
from frappe import _
from frappe.utils import add_to_date, get_datetime, now_datetime

from erp_connect.engine import http, pagination, transports
from erp_connect.engine.retry import parse_retry_after
from erp_connect.engine.transports import frappe_site, streams
from erp_connect.engine.transports.nats_jetstream import durable_name
from erp_connect.services.common import alerts
from erp_connect.services.common.locks import named_lock
from erp_connect.services.common.rates import count_in_window
from erp_connect.services.common.status import CONFLICT, CREATED, ERROR, UNCHANGED, UPDATED
from erp_connect.services.common.users import NotAWriter, run_as_api_user
from erp_connect.services.inbound import access
from erp_connect.services.inbound.upsert import PROTECTED_FIELDS, upsert
from erp_connect.services.pull import dead_letters

RUN = "erp_connect.services.pull.runs.run"

AUTH_FAILURES_TO_PAUSE = 3
MAX_TRIES = 4  # per page, for timeouts, 5xx and 429
MAX_WAIT_SECONDS = 60  # a longer Retry-After ends the run; the next run continues from the same page
MAX_ERRORS_KEPT = 200  # per run; the counts stay exact
RECORD_EXCERPT = 2000
MAX_STREAM_BATCHES = 100  # a run reads at most this many batches of messages; the next run goes on
THROTTLE_WINDOW_SECONDS = 60  # Requests per Minute to the Remote is counted per window


class PullFailed(Exception):
	"""The remote did not give us the page; the run stops where it is and the next one resumes."""

	def __init__(self, message: str, retry_after: float | None = None):
		super().__init__(message)
		self.retry_after = retry_after


class AuthFailed(PullFailed):
	pass


# -- scheduling ---------------------------------------------------------------------------------------
def run_due_rules() -> None:
	"""Every minute: queue a run of each enabled rule that is due."""
	for name in frappe.get_all(
		"Pull Rule", {"enabled": 1, "paused": 0, "next_run_at": ("<=", now_datetime())}, pluck="name"
	):
		enqueue_run(name)


def enqueue_run(rule: str, full_resync: bool = False, manual: bool = False) -> str:
	"""Queue a run. Scheduled runs have one job id per rule and minute and run only while the rule is
	due; manual ones ("Run now") always run. A run already going on makes another return at once."""
	moment = now_datetime().strftime("%Y%m%d%H%M%S" if manual else "%Y%m%d%H%M")
	job_id = f"erp_connect:pull:{rule}:{moment}:{int(full_resync)}"
	frappe.enqueue(
		RUN,
		queue="long",
		timeout=3 * 3600,
		job_id=job_id,
		deduplicate=True,
		enqueue_after_commit=True,
		rule=rule,
		full_resync=full_resync,
		manual=manual,
	)
	return job_id


def next_run_after(rule, moment: datetime.datetime) -> datetime.datetime:
	if rule.cron:
		from croniter import croniter

		return croniter(rule.cron, moment).get_next(datetime.datetime)
	return add_to_date(moment, minutes=rule.interval_minutes or 15)


# -- a run --------------------------------------------------------------------------------------------
def run(rule: str, full_resync: bool = False, manual: bool = True) -> str | None:
	"""Run one pull; returns the Sync Run's name (None when there was nothing to do: another run of
	the rule is going on, or a scheduled run finds the rule not due any more)."""
	with named_lock("pull", rule, 0) as taken:
		if not taken or (not manual and not is_due(rule)):
			return None
		return Puller(rule, full_resync).run()


def is_due(rule: str) -> bool:
	next_run_at = frappe.db.get_value("Pull Rule", rule, "next_run_at")
	return bool(next_run_at) and get_datetime(next_run_at) <= now_datetime()


class Puller:
	def __init__(self, rule: str, full_resync: bool):
		self.rule = frappe.get_doc("Pull Rule", rule)
		self.connector = frappe.get_doc("Connector", self.rule.connector)
		self.kind = transports.kind(self.connector.connector_type)
		self.spec = self.rule.list_spec()
		self.upsert_spec = self.rule.upsert_spec()
		self.full_resync = full_resync
		self.session = requests.Session()
		self.moved = False  # a record seen twice in one run: a counting list shifted under us

	def run(self) -> str | None:
		if not (self.rule.enabled and self.connector.enabled) or self.rule.paused:
			return None
		self.start()
		try:
			self.check_writable()
			# the connector's checked API user writes, so Frappe's permissions apply; never the
			# scheduler's own user
			with run_as_api_user(self.connector.api_user, _("Connector {0}").format(self.connector.name)):
				self.read()
		except PullFailed as e:
			self.stop(e)
		except NotAWriter as e:
			self.stop(PullFailed(str(e)))
		except Exception as e:
			frappe.db.rollback()
			frappe.log_error(f"ERP Connect pull {self.rule.name} failed")
			self.stop(PullFailed(_("unexpected error ({0}); see the Error Log").format(type(e).__name__)))
		else:
			self.finish()
		return self.sync_run.name

	def start(self) -> None:
		state = None if self.full_resync else json.loads(self.rule.resume_state or "null")
		started = now_datetime()
		if state:  # a run was interrupted: continue at its first uncommitted page
			frappe.db.set_value("Sync Run", state["run"], "status", "Interrupted")
			self.since, self.next_watermark, self.request = state["since"], state["watermark"], state["next"]
			self.moved = state.get("moved", False) or self.spec.style in pagination.COUNTING_STYLES
		else:
			self.since = None if self.full_resync else self.watermark_text()
			self.next_watermark = str(add_to_date(started, seconds=-(self.rule.overlap_seconds or 0)))
			self.request = pagination.first_page(self.spec, self.since)
		self.newest_remote = None
		self.sync_run = frappe.get_doc(
			{
				"doctype": "Sync Run",
				"pull_rule": self.rule.name,
				"connector": self.connector.name,
				"reference_doctype": self.rule.reference_doctype,
				"status": "Running",
				"full_resync": int(self.full_resync),
				"resumed": int(bool(state)),
				"started_at": started,
				"since": self.since or _("the beginning"),
			}
		).insert(ignore_permissions=True)
		self.seen: set[str] = set()
		self.rule.db_set({"last_run": self.sync_run.name, "next_run_at": next_run_after(self.rule, started)})
		frappe.db.commit()

	def check_writable(self) -> None:
		"""Nothing is read from the remote when nothing of it could be written."""
		refused = access.write_refusal(self.connector, self.rule.reference_doctype)
		if refused:
			raise PullFailed(refused)

	def watermark_text(self) -> str | None:
		if not self.rule.watermark:
			return None
		if self.spec.style == pagination.FRAPPE:
			return str(self.rule.watermark)  # the remote site's own modified time
		zone = zoneinfo.ZoneInfo(frappe.utils.get_system_timezone())
		return pagination.format_since(
			get_datetime(self.rule.watermark).replace(tzinfo=zone), self.spec.since_format
		)

	def read(self) -> None:
		if self.kind.reads_stream:
			self.read_stream(self.kind(self.connector.endpoint()))
		else:
			self.read_pages()

	def read_stream(self, transport) -> None:
		"""Batches of the rule's durable consumer: the records committed, then the messages acked."""
		subject, durable = self.rule.list_path.strip(), durable_name(self.rule.name)
		try:
			for _batch in range(MAX_STREAM_BATCHES):
				try:
					messages = transport.fetch_messages(subject, durable, self.spec.page_size or 100)
				except Exception as e:
					raise PullFailed(_("cannot read {0} from the stream: {1}").format(subject, _problem(e)))
				if not messages:
					break
				records, origins, failed = [], [], {}
				for message in messages:
					try:
						found = streams.records_of_message(message.data, self.spec.records_path)
					except ValueError as e:  # it never becomes a record: a dead letter
						self.count_unreadable(message, str(e))
						failed[id(message)] = (message, [str(e)])
						continue
					records += found
					origins += [message] * len(found)
				if records:
					for r in self.apply(records)["results"]:
						if r["status"] == ERROR:
							message = origins[r["index"]]
							failed.setdefault(id(message), (message, []))[1].append(r["error"])
				else:
					self.sync_run.pages = (self.sync_run.pages or 0) + 1
				self.keep_failed(list(failed.values()))
				self.save_position(None)  # commits the batch's records and its dead letters
				try:
					transport.ack(messages)
				except Exception as e:  # committed: handed out again later, and found unchanged
					raise PullFailed(
						_("the stream did not take the acknowledgements: {0}").format(_problem(e))
					)
		finally:
			transport.close()

	def keep_failed(self, failed: list) -> None:
		"""Messages that could not be written become dead letters, whole (a run keeps only
		excerpts), in the batch's transaction: acknowledging the batch then loses nothing."""
		for message, errors in failed:
			dead_letters.keep(self.rule, self.sync_run.name, message, "\n".join(errors))

	def count_unreadable(self, message, problem: str) -> None:
		"""A message that is not records is a failed record of the run (the message as the record)."""
		run = self.sync_run
		run.failed = (run.failed or 0) + 1
		if len(run.errors) < MAX_ERRORS_KEPT:
			record = message.data[:RECORD_EXCERPT].decode("utf-8", "replace")
			run.append("errors", {"external_id": message.message_id, "error": problem, "record": record})

	def read_pages(self) -> None:
		while self.request:
			body, headers = self.fetch(self.request)
			records = pagination.records_of(self.spec, body)
			following = pagination.next_page(
				self.spec, self.request, body, headers, records, self.connector.base_url
			)
			self.apply(self.kind.records_read(records))
			self.save_position(following)
			self.request = following

	def apply(self, records: list[dict]) -> dict:
		ids = [pagination.record_id(self.spec, r) for r in records]
		self.moved = self.moved or any(i in self.seen for i in ids if i)
		self.seen.update(i for i in ids if i)
		if self.spec.style == pagination.FRAPPE:
			self.newest_remote = max([self.newest_remote or "", *(str(r.get("modified")) for r in records)])
			if not self.rule.field_map:
				records = [frappe_site_record(r, self.rule.reference_doctype) for r in records]
		result = upsert(
			self.connector,
			self.rule.reference_doctype,
			records,
			spec=self.upsert_spec,
			correlation_id=self.sync_run.name,
		)
		run = self.sync_run
		run.pages = (run.pages or 0) + 1
		for status, field in (
			(CREATED, "created"),
			(UPDATED, "updated"),
			(UNCHANGED, "unchanged"),
			(CONFLICT, "conflicts"),
			(ERROR, "failed"),
		):
			run.set(field, (run.get(field) or 0) + result[status])
		for r in result["results"]:
			if r["status"] == ERROR and len(run.errors) < MAX_ERRORS_KEPT:
				record = frappe.as_json(records[r["index"]], indent=None)[:RECORD_EXCERPT]
				run.append(
					"errors", {"external_id": r.get("external_id"), "error": r["error"], "record": record}
				)
		return result

	def save_position(self, following: dict | None) -> None:
		"""Commit the page's records together with where the next page starts."""
		state = following and {
			"run": self.sync_run.name,
			"since": self.since,
			"watermark": self.next_watermark,
			"next": following,
			"moved": self.moved,
		}
		self.sync_run.save(ignore_permissions=True)
		self.rule.db_set("resume_state", json.dumps(state) if state else None)
		frappe.db.commit()

	def finish(self) -> None:
		values = {"resume_state": None, "auth_failures": 0}
		if self.spec.style == pagination.FRAPPE:
			if self.newest_remote:
				overlap = -(self.rule.overlap_seconds or 0)
				values["watermark"] = add_to_date(get_datetime(self.newest_remote), seconds=overlap)
		elif not self.moved:  # a shifted list may have hidden a record: read the same span again
			values["watermark"] = self.next_watermark
		self.rule.db_set(values)
		run = self.sync_run
		run.status = "Completed with Errors" if run.failed else "Succeeded"
		if self.moved and self.spec.style in pagination.COUNTING_STYLES:
			run.message = _("the list changed while it was read; the next run reads the same span again")
		run.finished_at = now_datetime()
		run.save(ignore_permissions=True)
		if self.connector.failing_since and not run.failed:
			alerts.connector_recovered(self.connector.name)
		frappe.db.commit()

	def stop(self, failure: PullFailed) -> None:
		"""The run ends early; its committed pages stay, and the next run resumes after them."""
		self.sync_run.reload()
		self.sync_run.db_set(
			{"status": "Failed", "message": str(failure)[:1000], "finished_at": now_datetime()}
		)
		if failure.retry_after:
			self.rule.db_set("next_run_at", add_to_date(now_datetime(), seconds=failure.retry_after))
		if isinstance(failure, AuthFailed):
			self.count_auth_failure(str(failure))
		frappe.db.commit()

	def count_auth_failure(self, reason: str) -> None:
		failures = (self.rule.auth_failures or 0) + 1
		self.rule.db_set("auth_failures", failures)
		if failures >= AUTH_FAILURES_TO_PAUSE:
			message = _("paused after {0} authentication failures in a row: {1}").format(failures, reason)
			self.rule.db_set({"paused": 1, "paused_reason": message, "next_run_at": None})
			alerts.connector_failing(
				self.connector.name,
				_("Pull Rule {0} was paused").format(self.rule.name),
				message + ". " + _("Fix the connector's credentials, then press Resume."),
				"Pull Rule",
				self.rule.name,
			)

	# -- HTTP -----------------------------------------------------------------------------------------
	def fetch(self, request: dict) -> tuple:
		"""One page, retried on timeouts, 5xx and short Retry-After waits."""
		url = request.get("url") or self.connector.url_for(self.rule.list_path)
		params = None if "url" in request else request["query"]
		headers = {"Accept": "application/json", **self.connector.auth_headers()}
		for attempt in range(1, MAX_TRIES + 1):
			throttle(self.connector)
			try:
				response = http.send(
					"GET",
					url,
					headers=headers,
					params=params,
					timeout=self.connector.timeout_seconds or http.DEFAULT_TIMEOUT_SECONDS,
					allow_private=bool(self.connector.allow_private_network),
					session=self.session,
				)
			except http.BlockedTargetError as e:
				raise PullFailed(str(e))
			except (requests.RequestException, OSError) as e:
				if attempt == MAX_TRIES:
					raise PullFailed(_("no answer from {0}: {1}").format(url, type(e).__name__))
				time.sleep(2**attempt)
				continue
			status = response.status
			if status in (401, 403):
				raise AuthFailed(_("the remote answered HTTP {0}").format(status))
			if status in (408, 425, 429) or status >= 500:
				wait = parse_retry_after(response.headers.get("Retry-After")) or 2**attempt
				if wait > MAX_WAIT_SECONDS or attempt == MAX_TRIES:
					raise PullFailed(
						_("the remote answered HTTP {0}; the next run continues from this page").format(
							status
						),
						retry_after=wait,
					)
				time.sleep(wait)
				continue
			if not 200 <= status < 300:
				excerpt = response.body[:300].decode("utf-8", "replace")
				raise PullFailed(_("the remote answered HTTP {0}: {1}").format(status, excerpt))
			try:
				return json.loads(response.body), response.headers
			except ValueError:
				raise PullFailed(_("the remote's answer is not JSON"))
		raise PullFailed(_("no page"))  # not reached


def _problem(error: BaseException) -> str:
	return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def throttle(connector) -> None:
	"""At most the connector's requests per minute, counted in Redis across every worker."""
	limit = connector.requests_per_minute or 0
	if not limit:
		return
	while True:
		count, seconds_left = count_in_window(f"outbound:{connector.name}", THROTTLE_WINDOW_SECONDS)
		if count <= limit:
			return
		time.sleep(seconds_left + 0.01)


def frappe_site_record(record: dict, doctype: str) -> dict:
	"""A record of another site's /api/resource without a field map: its own fields only (not the
	system fields a site sets itself - the nested-set numbers of a tree among them - nor fields this
	site does not have)."""
	meta = frappe.get_meta(doctype)
	system = PROTECTED_FIELDS | frappe_site.SYSTEM_FIELDS
	return {k: v for k, v in record.items() if k == "name" or (k not in system and meta.get_field(k))}
