"""Options declared once: each config dataclass field carries its help, range and choices.

The CLI builds its flags from these declarations (``cli_options``), and the Python API and experiments.toml check
values with ``resolve``, so an out-of-range value gets the same message wherever it comes from.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from seqrec.errors import SeqrecError

MISSING = dataclasses.MISSING


def option(default: Any, help: str, *, low: float | None = None, high: float | None = None,
           choices: Sequence[Any] | None = None, flag: str | None = None) -> Any:
    """A dataclass field with its help text, its allowed range ``[low, high]`` or its ``choices``.

    ``flag`` names the CLI flag when it should differ from the field's name (``--no-x`` style booleans keep it).
    """
    return dataclasses.field(default=default, metadata={
        "help": help, "low": low, "high": high, "choices": tuple(choices) if choices else None, "flag": flag})


def fields_of(*classes: type, exclude: Sequence[str] = ()) -> dict[str, dataclasses.Field]:
    """The user's options among the fields of ``classes`` (those declared with ``option``) by name; a name
    declared twice keeps its first declaration."""
    found: dict[str, dataclasses.Field] = {}
    for cls in classes:
        for field in dataclasses.fields(cls):
            if field.metadata.get("help") and field.name not in exclude:
                found.setdefault(field.name, field)
    return found


def check_value(name: str, value: Any, field: dataclasses.Field) -> None:
    meta = field.metadata
    if value is None:
        return
    choices = meta.get("choices")
    if choices and value not in choices:
        raise SeqrecError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    low, high = meta.get("low"), meta.get("high")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if (low is not None and value < low) or (high is not None and value > high):
        raise SeqrecError(f"{name} = {value} is out of range [{low if low is not None else '-inf'}, "
                          f"{high if high is not None else 'inf'}]")


def check(values: dict, classes: Sequence[type], command: str, extra: Sequence[str] = (),
          exclude: Sequence[str] = ()) -> None:
    """Refuse names none of ``classes`` declares as options (``extra`` are accepted unchecked, ``exclude`` are
    refused) and values out of range."""
    declared = fields_of(*classes, exclude=exclude)
    unknown = sorted(set(values) - set(declared) - set(extra))
    if unknown:
        accepted = sorted(set(declared) | set(extra))
        close = difflib.get_close_matches(unknown[0], accepted, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise SeqrecError(f"{command} does not take {', '.join(unknown)}{hint}; it takes {', '.join(accepted)}")
    for name, value in values.items():
        if name in declared:
            check_value(name, value, declared[name])


def build(cls: type, values: dict):
    """An instance of ``cls`` from the values it declares (the others are ignored; check them first)."""
    names = {field.name for field in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in values.items() if key in names and value is not None})


def resolve(command: str, values: dict, *classes: type, exclude: Sequence[str] = ()) -> tuple:
    """One instance of each of ``classes`` from the user's flat ``values``, every name and value checked."""
    check(values, classes, command, exclude=exclude)
    return tuple(build(cls, values) for cls in classes)


def with_defaults(cls: type, name: str, **defaults) -> type:
    """A copy of config dataclass ``cls`` whose listed fields default differently (a trainer's own loop defaults),
    with the same help, ranges and choices."""
    unknown = set(defaults) - {field.name for field in dataclasses.fields(cls)}
    assert not unknown, f"{cls.__name__} has no {unknown}"
    fields = [(field.name, field.type, dataclasses.field(default=defaults.get(field.name, field.default),
                                                         metadata=field.metadata))
              for field in dataclasses.fields(cls)]
    return dataclasses.make_dataclass(name, fields)


# the command line ---------------------------------------------------------------------------------------------------
def flag_type(field: dataclasses.Field, owner: type) -> type:
    """The Python type typer parses a field's flag as: the field's own type without ``None``."""
    hint = typing.get_type_hints(owner)[field.name]
    arguments = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and arguments:
        return arguments[0]
    return hint


def help_text(field: dataclasses.Field) -> str:
    meta = field.metadata
    text = meta.get("help", "")
    default = field.default if field.default is not MISSING else None
    if meta.get("choices"):
        text += f" ({' | '.join(map(str, meta['choices']))})"
    elif meta.get("low") is not None or meta.get("high") is not None:
        low = meta["low"] if meta.get("low") is not None else "-inf"
        high = meta["high"] if meta.get("high") is not None else "inf"
        text += f" (range {low} to {high})"
    default_text = "none" if default is None else str(default).lower() if isinstance(default, bool) else default
    return f"{text} \\[{default_text}]"  # escaped: rich would read [..] as markup


def cli_options(*classes: type, exclude: Sequence[str] = ()) -> Callable:
    """Decorate a Typer command with one flag per declared field of ``classes``; the command receives the flags
    the user set as ``**options`` (unset ones are left out, so the function's own defaults apply)."""
    import typer

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command)
        own = [parameter for parameter in signature.parameters.values()
               if parameter.kind is not inspect.Parameter.VAR_KEYWORD]
        taken = {parameter.name for parameter in own}
        added = []
        for cls in classes:
            for field in fields_of(cls, exclude=exclude).values():
                if field.name in taken:
                    continue
                taken.add(field.name)
                kind = flag_type(field, cls)
                flag = field.metadata.get("flag") or "--" + field.name.replace("_", "-")
                declarations = [f"{flag}/--no-{flag[2:]}"] if kind is bool else [flag]
                added.append(inspect.Parameter(
                    field.name, inspect.Parameter.KEYWORD_ONLY, annotation=typing.Optional[kind],
                    default=typer.Option(None, *declarations, help=help_text(field), show_default=False)))
        names = [parameter.name for parameter in added]

        def wrapper(**arguments):
            options = {name: arguments.pop(name) for name in names}
            return command(**arguments, **{key: value for key, value in options.items() if value is not None})

        wrapper.__signature__ = signature.replace(parameters=own + added)
        wrapper.__doc__, wrapper.__name__ = command.__doc__, command.__name__
        return wrapper

    return decorate
