"""Typed, frozen dataclasses from plain (YAML) data, with one-line errors that name the file
and field.

Used by the run config and by the sweep file. A field is declared with `opt(default, doc, ...)`:
the doc string is the field's comment, and `describe(cls)` renders it for `--help` and the README.
Errors read `<file>: <dotted.field>: <problem>; <fix>`; a field set with `--set` is named as
`--set <dotted.field>` so the user sees which part of the command line is wrong.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from runner.errors import ConfigError
from runner.redact import clip, quote

Check = Callable[[Any], "str | None"]  # value -> "problem; fix", or None when the value is fine

# PyYAML reads `1e-3` (no dot) as a string; YAML 1.2 and every user mean a number.
_DOTLESS_FLOAT = re.compile(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+")


@dataclasses.dataclass(frozen=True)
class Source:
    """Where config data came from: the file, and the dotted keys that `--set` replaced."""

    file: str
    overrides: tuple[str, ...] = ()

    def label(self, path: str) -> str:
        """How to name `path` to the user: as the override that set it, if one did."""
        for key in self.overrides:
            # the key itself, a field inside what it set, or a section it created
            if path == key or path.startswith((key + ".", key + "[")) or key.startswith(path + "."):
                return f"--set {key}"
        return path

    def error(self, path: str, problem: str) -> ConfigError:
        where = f"{self.label(path)}: " if path else ""
        return ConfigError(f"{self.file}: {where}{problem}")


def opt(default: Any, doc: str, *, choices: Sequence[str] = (), check: Check | None = None) -> Any:
    """A dataclass field with its documentation, allowed values and range check."""
    meta = {"doc": doc, "choices": choices, "check": check}  # a table stays live: no copy
    if dataclasses.is_dataclass(default) and isinstance(default, type):
        return dataclasses.field(default_factory=default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def above(lo: float, fix: str) -> Check:
    return lambda v: None if v > lo else f"must be > {lo}, got {v!r}; {fix}"


def at_least(lo: float, fix: str) -> Check:
    return lambda v: None if v >= lo else f"must be >= {lo}, got {v!r}; {fix}"


def at_most(hi: float, fix: str) -> Check:
    return lambda v: None if v <= hi else f"must be <= {hi}, got {v!r}; {fix}"


def at_most_items(n: int, fix: str) -> Check:
    return lambda v: None if len(v) <= n else f"must have at most {n} items, got {len(v)}; {fix}"


def both(first: Check, second: Check) -> Check:
    """`first`'s problem, else `second`'s."""
    return lambda v: first(v) or second(v)


def in_range(lo: float, hi: float, fix: str) -> Check:
    """lo <= v < hi."""
    return lambda v: None if lo <= v < hi else f"must be in [{lo}, {hi}), got {v!r}; {fix}"


def nonempty(fix: str) -> Check:
    return lambda v: None if v else f"must not be empty; {fix}"


def each(check: Check, nonempty_fix: str) -> Check:
    """Apply `check` to every item of a non-empty tuple."""

    def run(v: tuple) -> str | None:
        if not v:
            return f"must not be empty; {nonempty_fix}"
        return next((p for p in map(check, v) if p), None)

    return run


def did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"choose one of {', '.join(options)}"


def build(cls: type, data: Any, src: Source, path: str = "") -> Any:
    """An instance of the frozen dataclass `cls` from plain `data`, validated field by field."""
    if not isinstance(data, Mapping):
        raise src.error(path, f"must be a mapping, got {kind_of(data)}; write `key: value` pairs")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and "doc" in f.metadata}
    hints = _type_hints(cls)
    for key in data:
        if key not in fields:
            where = f"{path}.{clip(str(key))}" if path else clip(str(key))
            options = [f"{path}.{f}" if path else f for f in fields]
            raise src.error(where, f"unknown key; {did_you_mean(where, options)}")
    values = {}
    for name, f in fields.items():
        if name not in data:
            continue
        where = f"{path}.{name}" if path else name
        value = convert(data[name], hints[name], src, where)
        choices = f.metadata["choices"]
        if choices and value not in choices:
            raise src.error(where, f"unknown value {quote(value)}; {did_you_mean(value, choices)}")
        problem = f.metadata["check"](value) if f.metadata["check"] and value is not None else None
        if problem:
            raise src.error(where, problem)
        values[name] = value
    return cls(**values)


_sections: dict[tuple[type, str], Any] = {}


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # slow (it evaluates the annotations): a sweep builds many


def convert(value: Any, tp: Any, src: Source, path: str) -> Any:
    """`value` as type `tp` (bool, int, float, str, X | None, tuple, dict, dataclass, Any)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (tp,) = [a for a in args if a is not type(None)]
        return convert(value, tp, src, path)
    if dataclasses.is_dataclass(tp):
        # A section built from the same data is the same frozen value: a sweep's thousands of
        # trials share a few distinct sections, so each is validated once. repr tells apart
        # every value YAML makes (1, 1.0, true, '1'; -0.0); errors are never stored.
        key = (tp, repr(value))
        if len(key[1]) > 10_000:  # a rare big section: not worth the memory
            return build(tp, value, src, path)
        if key not in _sections:
            if len(_sections) >= 10_000:
                _sections.clear()
            _sections[key] = build(tp, value, src, path)
        return _sections[key]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise src.error(path, f"must be a list, got {kind_of(value)}; write it as [a, b, ...]")
        if args[-1] is not Ellipsis and len(value) != len(args):
            raise src.error(
                path, f"must have {len(args)} items, got {len(value)}; list {len(args)}"
            )
        item_types = [args[0]] * len(value) if args[-1] is Ellipsis else args
        pairs = enumerate(zip(value, item_types, strict=True))
        return tuple(convert(v, t, src, f"{path}[{i}]") for i, (v, t) in pairs)
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise src.error(
                path,
                f"must be a mapping with text keys, got {kind_of(value)}; write `key: value` pairs",
            )
        return {k: convert(v, args[1], src, f"{path}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, str) and _DOTLESS_FLOAT.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise src.error(path, f"must be a number, got {kind_of(value)}; write e.g. 0.1")
        if not math.isfinite(value):
            raise src.error(path, f"must be a finite number, got {value}; write e.g. 0.1")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise src.error(path, f"must be a whole number, got {kind_of(value)}; write e.g. 10")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise src.error(
                path, f"must be true or false, got {kind_of(value)}; write true or false"
            )
        return value
    if tp is str:
        if not isinstance(value, str):
            raise src.error(path, f"must be text, got {kind_of(value)}; quote it if needed")
        return value
    raise AssertionError(f"schema cannot convert to {tp!r} at {path}")


def kind_of(value: Any) -> str:
    """A value as YAML shows it, and what kind of value it is, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return f"{quote(value)} (text)"  # a clip: the "config" may be any file, /etc/passwd
    return f"{value!r} (a {'whole ' if isinstance(value, int) else ''}number)"


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, doc) for every field of `cls`, nested sections flattened."""
    rows = []
    for f in dataclasses.fields(cls):
        if "doc" not in f.metadata:
            continue
        key = f"{prefix}{f.name}"
        if f.default_factory is not dataclasses.MISSING:
            rows += describe(f.default_factory, key + ".")
            continue
        doc = f.metadata["doc"]
        if f.metadata["choices"]:
            doc += f" ({' | '.join(f.metadata['choices'])})"
        shown = yaml.safe_dump(plain(f.default), default_flow_style=True, width=1000)
        rows.append((key, shown.removesuffix("...\n").strip(), doc))
    return rows


def plain(value: Any) -> Any:
    """Dataclasses to dicts and tuples to lists, recursively: data `yaml.safe_dump` accepts."""
    if value is None or isinstance(value, (str, int, float)):
        return value  # most values: skip the dataclass test (a sweep hashes thousands of configs)
    if dataclasses.is_dataclass(value):
        return {
            f.name: plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if "doc" in f.metadata
        }
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value
