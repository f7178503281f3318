"""YAML files and `--set KEY=VALUE` overrides in, plain data out, read with `yaml.safe_load`
only; problems are one-line ConfigErrors naming the file and the key."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from runner.config.limits import MAX_YAML_BYTES, FileProblem, check_yaml, read_file
from runner.config.schema import kind_of
from runner.errors import ConfigError
from runner.redact import clip, quote


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
            f"got {kind_of(data)}; write `key: value` lines"
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
