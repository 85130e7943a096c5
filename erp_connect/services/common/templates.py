"""Template transforms of field maps: Jinja in Frappe's sandboxed environment. A template that
fails on one document is that record's mapping problem (a ValueError the field map reports),
never the user's save or a whole feed page; one that cannot compile is refused when the rule is
saved. Templates are always text, never a path to a file on the server."""

import frappe
from frappe import _
from frappe.utils.jinja import get_jenv
from jinja2 import TemplateSyntaxError


def render_template(template: str, context: dict) -> str:
	problem = template_problem(template)
	if problem:
		raise ValueError(problem)
	try:
		return get_jenv().from_string(template).render(context)
	except Exception as e:
		raise ValueError(
			_("template failed: {0}").format(frappe.utils.strip_html(str(e)) or type(e).__name__)
		)


def template_problem(template: str) -> str | None:
	"""Why ``template`` cannot be used, or None."""
	if ".__" in template:  # as frappe.render_template refuses: no reaching into Python internals
		return _("template failed: it may not use attributes that start with __")
	try:
		get_jenv().from_string(template)
	except TemplateSyntaxError as e:
		return _("the template does not compile (line {0}: {1})").format(e.lineno, e.message)
	return None
