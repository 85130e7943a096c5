"""Background jobs on Frappe's RQ workers: the app's job ids, and the sweeps that re-queue work
every minute."""

import frappe
from frappe.utils import now_datetime


def enqueue_sweep(method: str, kind: str, subject: str, queue: str = "default", **kwargs) -> None:
	"""Queue ``method`` for ``subject`` under a job id of this minute: a job of an earlier minute
	left "started" by a killed worker cannot block it, and two sweeps of one minute queue it once."""
	minute = now_datetime().strftime("%Y%m%d%H%M")
	frappe.enqueue(
		method, queue=queue, job_id=f"erp_connect:{kind}:{subject}:{minute}", deduplicate=True, **kwargs
	)
