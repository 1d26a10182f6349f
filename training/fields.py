"""Command-line arguments declared once, on the config dataclass they fill.

Each field of ``TrainConfig`` and ``SearchConfig`` carries its flag's help (and choices, type or
form) in its metadata; :func:`add_arguments` builds the argparse options from the fields and
their defaults, and :func:`from_args` turns parsed options back into the dataclass. So a
default, a choice list or a help text is written in one place, and the app's form, which builds
the same dataclass, can never disagree with the CLI. Bounds live in ``training.config.BOUNDS``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

_MISSING = dataclasses.MISSING


def arg(
    default: Any = _MISSING,
    help: str = "",
    *,
    default_factory: Any = _MISSING,
    choices: tuple | None = None,
    type: Any = None,
    metavar: str | None = None,
    flag: str | None = None,
    positional: bool = False,
    action: str | None = None,
    group: str | None = None,
) -> Any:
    """A dataclass field that is also a command-line option (see :func:`add_arguments`);
    ``group`` lists it under its own heading in ``--help``."""
    metadata = {
        "help": help,
        "choices": choices,
        "type": type,
        "metavar": metavar,
        "flag": flag,
        "positional": positional,
        "action": action,
        "group": group,
    }
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not _MISSING:
        return field.default_factory()
    return None if field.default is _MISSING else field.default


def _required(field: dataclasses.Field) -> bool:
    return field.default is _MISSING and field.default_factory is _MISSING


def add_arguments(parser: Any, cls: type) -> None:
    """Add one option per field of ``cls`` to an ``argparse`` parser: ``--epochs-head`` for
    ``epochs_head``, ``--no-augment`` for a boolean that defaults to True, positional for
    ``positional=True``; required when the field has no default. Help lists the positional and
    required ones first (a subclass's own ``--backbone`` before the shared fields), then the
    rest in declaration order, then each ``group`` under its heading."""
    fields = [f for f in dataclasses.fields(cls) if "help" in f.metadata]
    fields.sort(key=lambda f: (not f.metadata["positional"], not _required(f)))
    groups: dict[str, Any] = {}
    for field in fields:
        meta = field.metadata
        group = meta["group"]
        if group and group not in groups:
            groups[group] = parser.add_argument_group(group)
        _add_argument(groups[group] if group else parser, field)


def _add_argument(parser: Any, field: dataclasses.Field) -> None:
    meta = field.metadata
    kwargs: dict[str, Any] = {"help": meta["help"] or None}
    if meta["positional"]:
        parser.add_argument(field.name, **kwargs)
        return
    default = _default(field)
    flag = meta["flag"] or "--" + field.name.replace("_", "-")
    if isinstance(default, bool):
        flag = flag.replace("--", "--no-" if default else "--", 1)
        kwargs["action"] = "store_false" if default else "store_true"
        parser.add_argument(flag, dest=field.name, **kwargs)
        return
    if _required(field):
        kwargs["required"] = True
    else:
        kwargs["default"] = default
    if meta["action"]:
        kwargs["action"] = meta["action"]
    else:
        kwargs["type"] = meta["type"] or (type(default) if default is not None else str)
    for key in ("choices", "metavar"):
        if meta[key]:
            kwargs[key] = list(meta[key]) if key == "choices" else meta[key]
    if "choices" not in kwargs:  # the flag as typed (--backbone), not the field (backbones)
        kwargs.setdefault("metavar", flag.removeprefix("--").replace("-", "_").upper())
    parser.add_argument(flag, dest=field.name, **kwargs)


def from_args(cls: type, args: Any) -> Any:
    """``cls`` built from parsed options: every field its option set (others keep defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in vars(args).items() if k in names})


def to_argv(config: Any, always: tuple[str, ...] = (), only: tuple[str, ...] = ()) -> list[str]:
    """The options that rebuild ``config`` through :func:`add_arguments` and :func:`from_args`
    (the inverse of the pair): positional fields first, then each field whose value is not its
    default (or is named in ``always``), as the parser reads it: ``--no-augment`` for a boolean
    switched off, one ``--space`` per item of an appended list, ``--backbone A,B`` for a list
    under a flag of its own. ``only`` limits the options to those fields (positional ones kept)."""
    head: list[str] = []
    out: list[str] = []
    for field in sorted(dataclasses.fields(config), key=lambda f: not _required(f)):
        meta, name = field.metadata, field.name
        if "help" not in meta:
            continue
        value = getattr(config, name)
        if meta["positional"]:
            head.append(str(value))
            continue
        if only and name not in only:
            continue
        default = _default(field)
        if value is None or (name not in always and not _required(field) and value == default):
            continue
        flag = meta["flag"] or "--" + name.replace("_", "-")
        if isinstance(default, bool):
            if value != default:
                out.append(flag.replace("--", "--no-" if default else "--", 1))
            continue
        if isinstance(value, list) and meta["action"] == "append":
            for item in value:
                out += [flag, str(item)]
        elif isinstance(value, list):
            out += [flag, ",".join(str(v) for v in value)]
        else:
            out += [flag, str(value)]
    return head + out
