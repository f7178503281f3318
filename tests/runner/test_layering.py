"""The folder tree is the data flow: every import of engine/ and runner/ (lazy ones inside
functions too) points back down the flow, never up; mlflow stays in tracking; no cycles; and
every module keeps to its line budget."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGES = ("engine", "runner")

# stage -> the stages it may import (itself included). The flow: config -> trial specs ->
# execution -> training -> record -> tracking; commands drive them and the CLI calls commands.
# errors and interrupts stand beside the flow: anything in runner/ may raise or defer.
LOW = {"runner.errors", "runner.interrupts", "runner.redact"}
BELOW_TRAINING = LOW | {"engine", "runner.config", "runner.datasets", "runner.record"}
ALLOWED: dict[str, set[str]] = {
    "engine": {"engine"},
    "runner.errors": {"runner.errors"},
    "runner.interrupts": {"runner.interrupts"},
    "runner.redact": {"runner.redact"},
    "runner.config": LOW | {"engine", "runner.config"},
    "runner.datasets": LOW | {"runner.config", "runner.datasets"},
    "runner.record": LOW | {"runner.config", "runner.record"},
    "runner.training": BELOW_TRAINING | {"runner.training"},
    "runner.execution": BELOW_TRAINING | {"runner.training", "runner.execution"},
    # tracking writes what it is handed: nothing from the training side
    "runner.tracking": LOW | {"engine", "runner.config", "runner.record", "runner.tracking"},
    "runner.commands": set(),  # filled below: everything but the CLI
    "runner.cli": set(),  # everything
    "runner.launch": {"runner.launch", "runner.cli"},  # the entry point: only the CLI, late
    "runner.__main__": {"runner.__main__", "runner.launch"},
    "runner": {"runner"},
}
STAGES = sorted(ALLOWED, key=len, reverse=True)  # longest prefix first
ALLOWED["runner.commands"] = set(ALLOWED) - {"runner.cli", "runner.launch", "runner.__main__"}
ALLOWED["runner.cli"] = set(ALLOWED)

BUDGET = {"engine": 200, "runner": 300}
OVER_BUDGET: dict[str, str] = {  # module -> why it may be longer
    "engine.value": "every operator with its derivative beside it reads as one table of the chain "
    "rule; splitting Value across files would scatter it",
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """Every module `name` imports anywhere in its source, as absolute dotted names."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            # `from runner.execution import probe` imports the module runner.execution.probe
            subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES}
            found |= subs if len(subs) == len(node.names) else subs | {base}
    return found


def _project(imported: set[str]) -> set[str]:
    return {m for m in imported if m.split(".")[0] in PACKAGES and m in MODULES}


def _stage(name: str) -> str:
    return next(s for s in STAGES if name == s or name.startswith(s + "."))


GRAPH = {name: _project(_imports(name)) for name in MODULES}


def _closure(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += GRAPH[m]
    return seen


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down_the_flow(name):
    stage = _stage(name)
    upward = sorted(m for m in GRAPH[name] if _stage(m) not in ALLOWED[stage])
    assert not upward, f"{name} ({stage}) imports {upward}, later in the flow"


def test_only_tracking_imports_mlflow():
    users = {n for n in MODULES if any(m.split(".")[0] == "mlflow" for m in _imports(n))}
    assert users and all(_stage(n) == "runner.tracking" for n in users), sorted(users)


def test_workers_never_reach_mlflow():
    """What a worker process imports to run a task, lazy imports included."""
    reached = _closure("runner.execution.worker") | _closure("runner.execution.dask_backend")
    users = sorted(n for n in reached if any(m.split(".")[0] == "mlflow" for m in _imports(n)))
    assert not users


def test_the_pyfunc_model_and_the_probe_stand_alone():
    # the logged model loads with only engine/ beside it; the probe runs where mgrun is missing
    assert _project(_imports("runner.tracking.pyfunc_model")) <= {
        m for m in MODULES if m.startswith("engine")
    }
    probe = _imports("runner.execution.probe")
    assert all(m.split(".")[0] in sys.stdlib_module_names | {"__future__"} for m in probe), probe


def test_no_import_cycles():
    def visit(m: str, path: list[str]) -> None:
        if m in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(m) :], m]))
        if m in done:
            return
        for n in sorted(GRAPH[m]):
            visit(n, [*path, m])
        done.add(m)

    done: set[str] = set()
    for name in sorted(MODULES):
        visit(name, [])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_keep_to_their_line_budget(name):
    lines = len(MODULES[name].read_text().splitlines())
    budget = BUDGET[name.split(".")[0]]
    assert lines <= budget or name in OVER_BUDGET, f"{name}: {lines} lines > {budget}"
