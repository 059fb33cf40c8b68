"""Jinja prompt templates: shipped ones under templates/, or a user's own file."""

from __future__ import annotations

from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from seqrec.errors import SeqrecError
from seqrec.resources import resource_dir


def one_line(value):
    """Item text is data: a title's line breaks become spaces, so it cannot start a line of the prompt's own
    structure (a fake candidate, a fake answer); template syntax inside it is never evaluated anyway."""
    return " ".join(value.splitlines()) if isinstance(value, str) else value


def template_environment(folder: Path | None = None) -> jinja2.Environment:
    """Sandboxed, since user templates are files from anywhere; StrictUndefined, so that a missing variable is an
    error, never a silently blank line."""
    return SandboxedEnvironment(loader=jinja2.FileSystemLoader(str(folder or resource_dir("templates"))),
                                undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False,
                                finalize=one_line)


def located(template: str | Path) -> tuple[jinja2.Environment, str]:
    """(environment, name) of a shipped template by name (``rerank``) or of a template file by path."""
    path = Path(template)
    if path.is_file():
        return template_environment(path.parent), path.name
    return template_environment(), str(template).removesuffix(".jinja") + ".jinja"


def template_file(template: str | Path) -> Path:
    """The file a template name or path renders from."""
    environment, name = located(template)
    try:
        return Path(environment.get_template(name).filename)
    except jinja2.TemplateNotFound:
        raise not_found(template) from None
    except jinja2.TemplateSyntaxError as exc:
        raise SeqrecError(f"prompt template {exc.filename or template}, line {exc.lineno}: {exc.message}") from None


def template_variables(template: str | Path) -> set[str]:
    """The variables a template reads from its caller (those it sets itself are not counted)."""
    from jinja2 import meta

    environment, _ = located(template)
    source = template_file(template).read_text()
    return meta.find_undeclared_variables(environment.parse(source))


def not_found(template: str | Path) -> SeqrecError:
    shipped = sorted(p.stem for p in resource_dir("templates").glob("*.jinja"))
    return SeqrecError(f"no prompt template {template!r}; shipped templates: {', '.join(shipped)}")


def render_prompt(template: str | Path, **variables) -> str:
    """Render a shipped template by name (``rerank``) or a template file by path."""
    environment, name = located(template)
    try:
        return environment.get_template(name).render(**variables)
    except jinja2.TemplateNotFound:
        raise not_found(template) from None
    except jinja2.UndefinedError as exc:
        raise SeqrecError(f"prompt template {template}: {exc.message}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise SeqrecError(f"prompt template {exc.filename or template}, line {exc.lineno}: {exc.message}") from None
    except jinja2.exceptions.SecurityError as exc:
        raise SeqrecError(f"prompt template {template}: refused by the sandbox: {exc}") from None
