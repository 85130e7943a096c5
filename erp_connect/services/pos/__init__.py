"""Offline POS sync: ledger.py stores what terminals did, applier.py applies it (documents.py,
stock.py, naming.py), feed.py is what terminals read."""


def __getattr__(name: str):
	# old dotted paths (before 0.2) of jobs queued or scheduled by an earlier version; remove in 0.3
	if name in ("apply", "sweep"):
		from erp_connect.services.pos import applier

		return getattr(applier, name)
	raise AttributeError(name)
