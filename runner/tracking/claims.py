"""Claims on trials, so that two sweeps sharing a store never train the same trial twice.

A sweep claims each trial it is about to run with a file named after the trial's config hash,
beside the store (`<artifact root>/.mgrun-claims/<experiment id>/`), holding the claimer's host
and pid. Another sweep that finds a live claim waits for that trial's FINISHED run instead of
training it; a claim whose process on this host has exited is stale and taken over. Servers
decide their own artifact root, so sweeps on a remote store claim nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from runner.interrupts import protected
from runner.tracking.entities import HOST
from runner.tracking.store import artifact_root, locked
from runner.tracking.stored import alive


class Claims:
    """This process's claims on the trials of one experiment."""

    def __init__(self, uri: str, experiment_id: str):
        root = artifact_root(uri)
        self.dir = Path(root, ".mgrun-claims", experiment_id) if root else None
        self.mine: set[str] = set()
        self.me = f"{HOST} {os.getpid()}"

    def take(self, keys: Iterable[str]) -> tuple[list[str], dict[str, str]]:
        """Claim what no live process holds: (the keys now mine, {key: its live holder})."""
        keys = list(keys)
        if self.dir is None:
            return keys, {}
        self.dir.mkdir(parents=True, exist_ok=True)
        taken, held = [], {}
        # one process replaces a stale claim; Ctrl-C waits until every claim is also in `mine`
        with locked(self.dir), protected():
            for key in keys:
                holder = self.holder(key)
                if holder is None or holder == self.me:
                    self._write(key)
                    self.mine.add(key)
                    taken.append(key)
                else:
                    held[key] = holder
        return taken, held

    def holder(self, key: str) -> str | None:
        """Who holds a live claim on `key`: "host pid"; None when nobody (or a dead process)."""
        assert self.dir is not None
        try:
            text = (self.dir / key).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None
        host, _, pid = text.partition(" ")
        if not host or not pid.isdigit() or (host == HOST and not alive(int(pid))):
            return None  # not a claim mgrun writes (see `_write`), or its process is gone
        return text

    def _write(self, key: str) -> None:
        """The claim appears whole or not at all: a reader never sees an empty file."""
        assert self.dir is not None
        part = self.dir / f".{key}.{os.getpid()}"
        part.write_text(self.me)
        os.replace(part, self.dir / key)

    def release(self, key: str) -> None:
        if self.dir is not None and key in self.mine:
            self.mine.discard(key)
            (self.dir / key).unlink(missing_ok=True)

    def release_all(self) -> None:
        for key in list(self.mine):
            self.release(key)
