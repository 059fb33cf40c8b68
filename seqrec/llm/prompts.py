"""Jinja prompt templates: shipped ones under templates/, or a user's own file."""

from __future__ import annotations

from pathlib import Path

import jinja2

from seqrec.errors import SeqrecError
from seqrec.resources import resource_dir


def template_environment(folder: Path | None = None) -> jinja2.Environment:
    """StrictUndefined: a prompt with a missing variable is an error, never a silently blank line."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder or resource_dir("templates"))),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


def render_prompt(template: str | Path, **variables) -> str:
    """Render a shipped template by name (``rerank``) or a template file by path."""
    path = Path(template)
    if path.is_file():
        environment, name = template_environment(path.parent), path.name
    else:
        environment, name = template_environment(), str(template).removesuffix(".jinja") + ".jinja"
    try:
        return environment.get_template(name).render(**variables)
    except jinja2.TemplateNotFound:
        shipped = sorted(p.stem for p in resource_dir("templates").glob("*.jinja"))
        raise SeqrecError(f"no prompt template {template!r}; shipped templates: {', '.join(shipped)}") from None
    except jinja2.UndefinedError as exc:
        raise SeqrecError(f"prompt template {template}: {exc.message}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise SeqrecError(f"prompt template {exc.filename or template}, line {exc.lineno}: {exc.message}") from None
