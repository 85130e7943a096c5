"""Large imports in the background: the records are kept as a private JSON-lines file and a worker
upserts them in chunks, appending per-record results to a results file and committing progress
after each chunk, so its memory stays flat however large the import. A killed worker's import is
queued again by the per-minute sweep and resumes where the last committed chunk ended; results it
had written for a chunk whose progress was never committed are dropped first, so every record is
reported once. One worker at a time runs an import (a database lock that dies with its worker)."""

import json
import os

import frappe
from frappe import _
from frappe.utils import now_datetime

from erp_connect.services.common import jobs
from erp_connect.services.common.locks import named_lock
from erp_connect.services.common.status import CANCELLED, CREATED, ERROR, UNCHANGED, UPDATED
from erp_connect.services.common.users import run_as_api_user
from erp_connect.services.inbound.upsert import upsert

RUN = "erp_connect.services.inbound.imports.run"
CHUNK = 200
MAX_RECORDS = 100_000
COUNTS = (CREATED, UPDATED, UNCHANGED, CANCELLED, ERROR)


def start(connector: "frappe.Document", doctype: str, records: list, action: str) -> dict:
	"""Store the records and queue the import; returns at once with its id."""
	job = frappe.get_doc(
		{
			"doctype": "Sync Import",
			"connector": connector.name,
			"reference_doctype": doctype,
			"action": action,
			"status": "Queued",
			"total": len(records),
			"processed": 0,
		}
	).insert(ignore_permissions=True)
	lines = "\n".join(json.dumps(r, separators=(",", ":"), default=str) for r in records)
	job.db_set("records_file", _save_file(job.name, "records", lines).file_url)
	frappe.enqueue(
		RUN,
		name=job.name,
		queue="default",
		timeout=6 * 3600,
		job_id=f"erp_connect:import:{job.name}",
		deduplicate=True,
		enqueue_after_commit=True,
	)
	return {"import": job.name, "total": len(records), "status": "Queued"}


def sweep() -> None:
	"""Every minute: queue the imports that are not finished again. One still being run by a live
	worker holds its lock, so the new job returns at once; a killed worker's is resumed."""
	for name in frappe.get_all("Sync Import", {"status": ("in", ("Queued", "Running"))}, pluck="name"):
		jobs.enqueue_sweep(RUN, "import-sweep", name, queue="default", timeout=6 * 3600, name=name)


def run(name: str) -> None:
	with named_lock("import", name, 0) as taken:
		if taken:
			_run(name)


def _run(name: str) -> None:
	job = frappe.get_doc("Sync Import", name)
	if job.status == "Done":
		return
	connector = frappe.get_doc("Connector", job.connector)
	results_path = _private_path(f"{name}-results.jsonl")
	keep_committed_results(results_path, job.processed or 0)
	job.db_set({"status": "Running", "started_at": job.started_at or now_datetime()}, commit=True)
	try:
		with run_as_api_user(connector.api_user, _("Connector {0}").format(connector.name)):
			_run_chunks(job, connector, results_path)
		if not job.results_file:
			job.db_set("results_file", _register_file(job.name, results_path).file_url)
		job.db_set({"status": "Done", "finished_at": now_datetime()}, commit=True)
	except Exception as e:
		frappe.db.rollback()
		frappe.get_doc("Sync Import", name).db_set({"status": "Failed", "error": str(e)[:1000]}, commit=True)
		raise


def _run_chunks(job, connector, results_path: str) -> None:
	"""Upsert the chunks not done yet, committing the progress after each."""
	name = job.name
	for offset, chunk in _chunks(_private_path(os.path.basename(job.records_file)), job.processed):
		result = upsert(
			connector, job.reference_doctype, chunk, action=job.action or "save", correlation_id=name
		)
		append_results(results_path, offset, result["results"])
		progress = {f"{k}_count": (job.get(f"{k}_count") or 0) + result[k] for k in COUNTS}
		progress["processed"] = offset + len(chunk)
		job.db_set(progress, commit=True)  # a killed worker resumes after this chunk
		job.reload()
		frappe.publish_realtime(
			"erp_connect_import_progress", {"name": name, "processed": job.processed, "total": job.total}
		)


def keep_committed_results(path: str, processed: int) -> None:
	"""Drop result lines beyond the records whose progress was committed: a worker killed after
	writing a chunk's results but before committing it left them, and the chunk runs again."""
	if not os.path.exists(path):
		return
	with open(path) as f:
		lines = f.readlines()
	if len(lines) > processed:
		with open(path, "w") as f:
			f.writelines(lines[:processed])


def append_results(path: str, offset: int, results: list[dict]) -> None:
	with open(path, "a") as f:
		for r in results:
			f.write(json.dumps({**r, "index": offset + r["index"]}, default=str) + "\n")


def status(job) -> dict:
	return {
		"import": job.name,
		"status": job.status,
		"total": job.total,
		"processed": job.processed,
		"percent": round(100 * (job.processed or 0) / job.total) if job.total else 100,
		**{k: job.get(f"{k}_count") or 0 for k in COUNTS},
		"error_message": job.error,
	}


def results(job) -> bytes:
	if not job.results_file:
		return b""
	with open(_private_path(os.path.basename(job.results_file)), "rb") as f:
		return f.read()


def _chunks(path: str, skip: int):
	"""(offset, records) of at most CHUNK records, reading the file line by line."""
	chunk, offset = [], skip
	with open(path) as f:
		for number, line in enumerate(f):
			if number < skip:
				continue
			chunk.append(json.loads(line))
			if len(chunk) == CHUNK:
				yield offset, chunk
				offset, chunk = offset + CHUNK, []
	if chunk:
		yield offset, chunk


def _private_path(file_name: str) -> str:
	return frappe.get_site_path("private", "files", file_name)


def _save_file(name: str, kind: str, content: str):
	return frappe.get_doc(
		{
			"doctype": "File",
			"file_name": f"{name}-{kind}.jsonl",
			"is_private": 1,
			"content": content,
			"attached_to_doctype": "Sync Import",
			"attached_to_name": name,
		}
	).insert(ignore_permissions=True)


def _register_file(name: str, path: str):
	"""A File record for a file the worker wrote itself."""
	return frappe.get_doc(
		{
			"doctype": "File",
			"file_name": os.path.basename(path),
			"file_url": f"/private/files/{os.path.basename(path)}",
			"is_private": 1,
			"attached_to_doctype": "Sync Import",
			"attached_to_name": name,
		}
	).insert(ignore_permissions=True)
