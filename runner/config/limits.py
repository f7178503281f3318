"""Upper limits on what mgrun reads and builds, and the guards that hold them.

Hostile or mistaken input (a YAML alias bomb, `n_samples: 1000000000`, a CSV path that is
/dev/zero) fails at once, in one line that names the file, the field and the limit, instead of
after minutes or gigabytes. The limits of config keys are `check=`s in runner/config.py and show
in `mgrun keys`; README's "Limits" section lists every limit.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from runner.errors import ConfigError
from runner.redact import clip

MAX_YAML_BYTES = 1_000_000  # a config or sweep file, or a --set value (hand-written: a few KB)
MAX_YAML_DEPTH = 32  # lists and mappings inside each other (a config needs 3)
MAX_YAML_VALUES = 100_000  # values in one YAML document, every alias counted in full
MAX_NUMBER_CHARS = 100  # characters of one YAML number (long ones take quadratic time to read)
MAX_CSV_BYTES = 50_000_000  # a CSV data file
MAX_SAMPLES = 1_000_000  # dataset.n_samples, the data rows of a CSV file, training.batch_size
MAX_UNITS = 4096  # units of one hidden layer
MAX_LAYERS = 16  # hidden layers
MAX_WEIGHTS = 1_000_000  # weights and biases of one model; each is a ~115-byte engine Value
MAX_CLASSES = 1000  # dataset.n_classes
MAX_STEPS = 1_000_000  # training.steps; a run keeps every step's metrics in memory
MAX_NOISE = 10.0  # dataset.noise; the generated points lie within about 2 of the origin
MAX_TRIALS = 100_000  # trials of one sweep (points x seeds), counted before any is made
MAX_JOBS = 1024  # worker processes one sweep starts
MAX_NAME = 500  # characters of a run or experiment name (MLflow's limit)
GENERATED_FEATURES = 2  # every generated dataset has two features (runner/datasets.py)

_FAST = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser, when installed
_PLAIN_KEY = "write `name: value` with a plain name"
_INT, _FLOAT, _DATE = (f"tag:yaml.org,2002:{t}" for t in ("int", "float", "timestamp"))


class FileProblem(Exception):
    """Why a path cannot be read as a file, as `problem; fix` for the caller to prefix."""


def read_file(path: str | os.PathLike, limit: int, fix: str) -> bytes:
    """The bytes of the regular file at `path` (symlinks followed; a loop refused) if it holds at
    most `limit` bytes; `fix` says what to do about a larger one. FileNotFoundError propagates,
    every other problem is a FileProblem."""
    try:
        _regular(os.stat(path), limit, fix)
        # Non-blocking: had the path become a FIFO since the stat, open would wait for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            _regular(os.fstat(f.fileno()), limit, fix)
            data = f.read(limit + 1)  # /proc files report size 0: the read must bound itself
    except FileNotFoundError:
        raise
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise FileProblem("a loop of symbolic links; point the path at a file") from None
        raise FileProblem(f"cannot read the file ({e.strerror}); check the path") from None
    if len(data) > limit:
        raise FileProblem(f"larger than the limit of {limit:,} bytes; {fix}")
    return data


def _regular(st: os.stat_result, limit: int, fix: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise FileProblem("a directory, not a file; give the path of a file")
    if not stat.S_ISREG(st.st_mode):
        kind = "a named pipe" if stat.S_ISFIFO(st.st_mode) else "a socket or device"
        raise FileProblem(f"{kind}, not a regular file; give the path of a file")
    if st.st_size > limit:
        raise FileProblem(f"{st.st_size:,} bytes, over the limit of {limit:,}; {fix}")


@dataclass
class _Open:
    """A list or mapping the parser is inside of."""

    mapping: bool
    anchor: str | None
    size: int = 1  # values so far, itself included, aliases counted in full
    n: int = 0  # children so far (keys and values)
    key: Any = None  # a mapping's latest key

    def step(self) -> str:
        return f".{clip(str(self.key))}" if self.mapping else f"[{self.n - 1}]"


def check_yaml(text: str, file: str, field: str = "") -> None:
    """Refuse YAML that would be slow or huge to load: too long, nested too deep, too many values
    once aliases are expanded (a "billion laughs"), an alias inside its own anchor, a list or
    mapping as a key, a bad or many-digit number. Walks the parser's events before anything is
    composed (PyYAML's composer is recursive). Errors read `file: field.path: problem (line n);
    fix`; YAML syntax errors propagate as yaml.YAMLError, worded by PyYAML's own parser."""
    if len(text) > MAX_YAML_BYTES:
        where = ": ".join(p for p in (file, field) if p)
        limit = f"over the limit of {MAX_YAML_BYTES:,}"
        raise ConfigError(f"{where}: {len(text):,} characters, {limit}; shorten it")
    try:
        _Guard(file, field).walk(yaml.parse(text, Loader=_FAST))
    except (yaml.YAMLError, UnicodeError):  # let the pure-Python parser word it (and read on)
        _Guard(file, field).walk(yaml.parse(text, Loader=yaml.SafeLoader))


class _Guard:
    """One walk over a YAML document's events, counting as it goes."""

    def __init__(self, file: str, field: str):
        self.file, self.field = file, field
        self.stack: list[_Open] = []  # the open lists and mappings, outermost first
        self.anchors: dict[str, int | None] = {}  # anchor -> values it stands for; None if open
        self.collections: set[str] = set()  # anchors of lists and mappings
        self.loader = yaml.SafeLoader("")  # resolves and reads numbers

    def walk(self, events: Iterator[yaml.Event]) -> None:
        for event in events:
            if isinstance(event, yaml.DocumentEndEvent):
                return  # the first document passed; yaml refuses a second one
            if isinstance(event, yaml.CollectionEndEvent):
                done = self.stack.pop()
                if done.anchor:
                    self.anchors[done.anchor] = done.size
                self.grow(done.size, event)
            elif isinstance(event, yaml.NodeEvent):  # not a stream or document start
                parent = self.stack[-1] if self.stack else None
                at_key = parent is not None and parent.mapping and parent.n % 2 == 0
                if parent is not None:
                    parent.n += 1
                self.node(event, at_key)
                if at_key and parent is not None:
                    parent.key = getattr(event, "value", event.anchor)

    def node(self, event: yaml.NodeEvent, at_key: bool) -> None:
        if isinstance(event, yaml.CollectionStartEvent):
            mapping = isinstance(event, yaml.MappingStartEvent)
            if at_key:
                kind = "a mapping" if mapping else "a list"
                raise self.fail(event, True, f"a key must be text, got {kind}", _PLAIN_KEY)
            self.stack.append(_Open(mapping, event.anchor))
            if event.anchor:
                self.anchors[event.anchor] = None
                self.collections.add(event.anchor)
            if len(self.stack) > MAX_YAML_DEPTH:
                problem = f"nested more than {MAX_YAML_DEPTH} levels deep"
                raise self.fail(event, True, problem, "flatten it")
        elif isinstance(event, yaml.AliasEvent):
            size = self.anchors.get(event.anchor, 1)  # an unknown anchor: yaml reports it later
            if size is None:
                problem = f"alias *{clip(event.anchor)} is inside its own anchor"
                raise self.fail(event, at_key, problem, "refer to a finished value")
            if at_key and event.anchor in self.collections:
                raise self.fail(event, True, "a key must be text", _PLAIN_KEY)
            self.grow(size, event)
        else:
            if event.anchor:
                self.anchors[event.anchor] = 1
            if problem := _scalar_problem(event, self.loader):
                raise self.fail(event, at_key, *problem)
            self.grow(1, event)

    def grow(self, size: int, event: yaml.Event) -> None:
        """Count `size` more values into the innermost open list or mapping."""
        if self.stack:
            self.stack[-1].size += size
            if self.stack[-1].size > MAX_YAML_VALUES:
                problem = f"more than {MAX_YAML_VALUES:,} values with its aliases expanded"
                fix = "a config needs a few dozen: write fewer values or aliases"
                raise self.fail(event, True, problem, fix)

    def fail(self, event: yaml.Event, up: bool, problem: str, fix: str) -> ConfigError:
        """The error at `event`, named by the path of its list or mapping if `up`."""
        path = "".join(c.step() for c in (self.stack[:-1] if up else self.stack))
        name = clip(path.removeprefix("."), 60)
        if self.field and name:
            name = self.field + ("" if name[0] == "[" else ".") + name
        where = "".join(f"{p}: " for p in (self.file, name or self.field) if p)
        return ConfigError(f"{where}{problem} (line {event.start_mark.line + 1}); {fix}")


def _scalar_problem(event: yaml.ScalarEvent, loader: yaml.SafeLoader) -> tuple[str, str] | None:
    """(problem, fix) for a number or date that is too long or invalid (`!!int abc`,
    `2020-13-45`: yaml would raise a ValueError, a traceback)."""
    tag = event.tag
    if tag in (None, "!"):
        if not event.value[:1].isdigit() and event.value[:1] not in "+-.":
            return None  # every implicit number and date starts so
        tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
    if tag not in (_INT, _FLOAT, _DATE):
        return None
    if len(event.value) > MAX_NUMBER_CHARS:
        chars = f"{len(event.value):,} characters"
        return f"a number or date of {chars}", f"write at most {MAX_NUMBER_CHARS}"
    try:
        loader.construct_object(yaml.ScalarNode(tag, event.value))
    except ValueError as e:
        return f"cannot read {clip(event.value)} ({clip(str(e), 80)})", "fix it or quote it"
    return None


def too_many_trials(points: int, seeds: int, fix: str) -> str | None:
    """The problem with a sweep of `points` x `seeds` trials, counted before any is made."""
    n = points * seeds
    if n <= MAX_TRIALS:
        return None
    count = f"{points:,} points x {seeds:,} seed(s) = {n:,} trials"
    return f"{count}, over the limit of {MAX_TRIALS:,}; {fix}"


def too_many_weights(n_in: int, hidden: tuple[int, ...], n_out: int) -> str | None:
    """The problem with an MLP of these layer sizes, if it has more than MAX_WEIGHTS weights."""
    sizes = [n_in, *hidden, n_out]
    n = sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))
    if n <= MAX_WEIGHTS:
        return None
    shape = f"{n_in} inputs -> {list(hidden)} -> {n_out} outputs"
    return (
        f"{shape} is {n:,} weights, over the limit of {MAX_WEIGHTS:,}; use fewer or smaller layers"
    )


def name_problem(name: str) -> str | None:
    """The problem with a run or experiment name MLflow would refuse for its length."""
    if len(name) <= MAX_NAME:
        return None
    return f"{len(name):,} characters, over MLflow's limit of {MAX_NAME}; use a shorter name"


def check_name_option(option: str, value: str | None) -> None:
    """Refuse a command-line name (e.g. --experiment) that MLflow would refuse, before any store
    is opened."""
    if value is not None and (problem := name_problem(value)):
        raise ConfigError(f"{option}: {problem}")
