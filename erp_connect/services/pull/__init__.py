"""Scheduled pulls: runs.py reads a remote list page by page into the upsert path."""


def __getattr__(name: str):
	# old dotted paths (before 0.2) of jobs queued or scheduled by an earlier version; remove in 0.3
	if name in ("run", "run_due_rules"):
		from erp_connect.services.pull import runs

		return getattr(runs, name)
	raise AttributeError(name)
