"""Many similar records as one YAML list, in seconds where `yaml.safe_dump` takes minutes.

A sweep's trial list repeats the same config values thousands of times; PyYAML's representer
spends most of a dump rediscovering them. Here each distinct (key, value) is dumped once and its
text reused, and numbers are written as PyYAML writes them. The text loads back equal to what
`yaml.safe_dump(records, sort_keys=False)` writes (without its `&id001` anchors for objects that
appear twice).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import yaml

_STR = "tag:yaml.org,2002:str"


class _Writer:
    def __init__(self) -> None:
        self.pieces: dict[tuple[str, str, int], str] = {}  # (key, repr(value), indent) -> text
        self.plain: dict[str, bool] = {}  # text -> whether it can be written as it is
        self.scalars: dict[str, str | None] = {}  # repr(value) -> its text, if simple
        self.numbers = yaml.representer.SafeRepresenter()
        self.resolve = yaml.resolver.Resolver().resolve

    def mapping(self, data: Mapping[str, Any], indent: int) -> Iterator[str]:
        pad = " " * indent
        for key, value in data.items():
            plain = isinstance(key, str) and self.is_plain(key)
            if plain and isinstance(value, dict) and value:
                yield f"{pad}{key}:\n"
                yield from self.mapping(value, indent + 2)
            elif plain and not isinstance(value, (list, dict)) and (text := self.scalar(value)):
                yield f"{pad}{key}: {text}\n"
            else:
                yield self.piece(key, value, indent)

    def scalar(self, value: Any) -> str | None:
        """A number, null, boolean or simple text as yaml writes it; None for anything else."""
        cache = repr(value)  # tells apart 1, 1.0, True and '1'
        if cache not in self.scalars:
            text = None
            if value is None or isinstance(value, (bool, int, float)):
                text = self.numbers.represent_data(value).value
            elif isinstance(value, str) and len(value) < 80 and self.is_plain(value):
                text = value
            self.scalars[cache] = text
        return self.scalars[cache]

    def piece(self, key: Any, value: Any, indent: int) -> str:
        """`key: value` as yaml.safe_dump writes it, indented; dumped once per distinct value."""
        cache = (repr(key), repr(value), indent)  # repr tells apart 1, 1.0, true and '1'
        if cache not in self.pieces:
            text = yaml.safe_dump({key: value}, sort_keys=False)
            self.pieces[cache] = textwrap.indent(text, " " * indent)
        return self.pieces[cache]

    def is_plain(self, text: str) -> bool:
        """Whether `text` reads back as itself when written unquoted (not `true`, `1`, `a: b`)."""
        if text not in self.plain:
            simple = text.replace(".", "").replace("_", "").isalnum() and text.isascii()
            tag = self.resolve(yaml.ScalarNode, text, (True, False))
            self.plain[text] = simple and tag == _STR
        return self.plain[text]


def dump_records(records: Sequence[Mapping[str, Any]]) -> str:
    """A YAML list of the mappings `records`, each key in its order."""
    writer, out = _Writer(), []
    for record in records:
        text = "".join(writer.mapping(record, 2))
        out.append("- " + text[2:] if text else "- {}\n")
    return "".join(out) if out else "[]\n"
