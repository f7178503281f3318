"""Typed, frozen dataclasses from YAML data, with one-line errors that name the file and field.

Used by the run config and by the sweep file. A field is declared with `opt(default, doc, ...)`:
the doc string is the field's comment, and `describe(cls)` renders it for `--help` and the README.
Errors read `<file>: <dotted.field>: <problem>; <fix>`; a field set with `--set` is named as
`--set <dotted.field>` so the user sees which part of the command line is wrong.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from runner.errors import ConfigError
from runner.limits import MAX_YAML_BYTES, FileProblem, check_yaml, read_file
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
    meta = {"doc": doc, "choices": tuple(choices), "check": check}
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


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file, read with `yaml.safe_load` only."""
    name = str(path)
    try:
        text = read_file(path, MAX_YAML_BYTES, "a config is a few KB; check the path").decode()
    except FileNotFoundError:
        raise ConfigError(f"{name}: file not found; check the path") from None
    except FileProblem as e:
        raise ConfigError(f"{name}: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{name}: cannot read the file ({e}); check the path") from None
    try:
        check_yaml(text, name)
        loader = yaml.SafeLoader(text)  # as yaml.safe_load, keeping the node tree
        node = loader.get_single_node()
        repeated = _repeated_key(node)  # before construction merges `<<:` keys into the tree
        data = loader.construct_document(node) if node is not None else None
    except yaml.constructor.ConstructorError as e:
        line = f"line {e.problem_mark.line + 1}: " if e.problem_mark else ""
        raise ConfigError(
            f"{name}: {line}YAML tags such as '!!python/...' are not allowed; "
            "write plain values (numbers, strings, lists, mappings)"
        ) from None
    except yaml.reader.ReaderError as e:  # a control character: /proc/self/environ, a binary
        at = f"character #x{e.character:04x} at position {e.position}"
        raise ConfigError(f"{name}: not YAML text ({at}); check the path") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = clip(str(e.problem), 80)
        raise ConfigError(f"{name}: {at}malformed YAML ({problem}); fix the syntax") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{name}: malformed YAML ({e}); fix the syntax") from None
    if repeated:
        key, first, again = repeated
        raise ConfigError(
            f"{name}: {key}: set twice (lines {first} and {again}), YAML would keep only the "
            "last; keep one"
        )
    if data is None:
        raise ConfigError(f"{name}: the file is empty; write the config as a YAML mapping")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{name}: the top level must be a mapping of keys to values, "
            f"got {_kind(data)}; write `key: value` lines"
        )
    return data


def _repeated_key(node: yaml.Node | None, path: str = "") -> tuple[str, int, int] | None:
    """The first mapping key written twice, as (dotted key, first line, second line). Works on
    the composed node tree, which holds no constructed objects."""
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key, value in node.value:
            dotted = f"{path}.{key.value}" if path else str(key.value)
            line = key.start_mark.line + 1
            if dotted in lines:
                return dotted, lines[dotted], line
            lines[dotted] = line
            if found := _repeated_key(value, dotted):
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            if found := _repeated_key(item, f"{path}[{i}]"):
                return found
    return None


def parse_override(text: str, file: str = "") -> tuple[str, Any]:
    """`"a.b=value"` -> ("a.b", value), the value read as a YAML scalar or flow collection."""
    key, eq, raw = text.partition("=")
    key = key.strip()
    prefix = f"{file}: " if file else ""
    if not eq or not key or any(not part.strip() for part in key.split(".")):
        raise ConfigError(
            f"{prefix}--set {text}: expected KEY=VALUE; write e.g. --set training.lr=0.05"
        )
    if not raw.strip():
        raise ConfigError(f"{prefix}--set {key}: empty value; write e.g. {key}=null to unset it")
    try:
        check_yaml(raw, file, f"--set {key}")
        value = yaml.safe_load(raw)
    except yaml.constructor.ConstructorError:
        raise ConfigError(
            f"{prefix}--set {key}: YAML tags are not allowed; write a plain value"
        ) from None
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or "cannot parse"
        raise ConfigError(
            f"{prefix}--set {key}: malformed value {quote(raw)} ({clip(str(problem), 80)}); "
            "write e.g. 0.05 or [8, 8]"
        ) from None
    return key, value


def apply_overrides(
    data: dict[str, Any], overrides: Sequence[str], file: str = ""
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A copy of `data` with every `--set KEY=VALUE` applied, and the keys that were set."""
    data = copy.deepcopy(data)
    keys = []
    for text in overrides:
        key, value = parse_override(text, file)
        set_dotted(data, key, value, f"{file}: --set {key}")
        keys.append(key)
    return data, tuple(keys)


def set_dotted(data: dict[str, Any], key: str, value: Any, where: str) -> None:
    """data["a"]["b"] = value for key "a.b", creating missing sections; `where` prefixes errors."""
    node, parts = data, key.split(".")
    for i, part in enumerate(parts[:-1]):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            section = ".".join(parts[: i + 1])
            raise ConfigError(f"{where}: {section} is not a section; set {section} as a whole")
    node[parts[-1]] = value


def build(cls: type, data: Any, src: Source, path: str = "") -> Any:
    """An instance of the frozen dataclass `cls` from plain `data`, validated field by field."""
    if not isinstance(data, Mapping):
        raise src.error(path, f"must be a mapping, got {_kind(data)}; write `key: value` pairs")
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
            raise src.error(path, f"must be a list, got {_kind(value)}; write it as [a, b, ...]")
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
                f"must be a mapping with text keys, got {_kind(value)}; write `key: value` pairs",
            )
        return {k: convert(v, args[1], src, f"{path}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, str) and _DOTLESS_FLOAT.fullmatch(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise src.error(path, f"must be a number, got {_kind(value)}; write e.g. 0.1")
        if not math.isfinite(value):
            raise src.error(path, f"must be a finite number, got {value}; write e.g. 0.1")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise src.error(path, f"must be a whole number, got {_kind(value)}; write e.g. 10")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise src.error(path, f"must be true or false, got {_kind(value)}; write true or false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise src.error(path, f"must be text, got {_kind(value)}; quote it if needed")
        return value
    raise AssertionError(f"schema cannot convert to {tp!r} at {path}")


def _kind(value: Any) -> str:
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
