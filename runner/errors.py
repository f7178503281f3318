"""The errors mgrun reports to its users; each maps to an exit code in the CLI.

    MgrunError                 exit 1
    ├── ConfigError            exit 2  a run config, sweep file or --set override is wrong
    ├── DataError              exit 2  the dataset cannot be built (CSV file problems)
    ├── BackendError           exit 2  a cluster or tracking store cannot be used
    └── TrainingDiverged       exit 1  the loss became NaN or infinite

Messages are one line that names the file, the dotted field and the fix. Internal invariants are
asserts, not these.
"""

from __future__ import annotations


class MgrunError(Exception):
    """Base of every error meant for the user."""

    exit_code = 1


class ConfigError(MgrunError):
    """A config, sweep file or override is malformed or out of range."""

    exit_code = 2


class DataError(MgrunError):
    """The configured dataset cannot be built."""

    exit_code = 2


class BackendError(MgrunError):
    """An execution backend (Dask cluster) or tracking store is unusable."""

    exit_code = 2


class TrainingDiverged(MgrunError):
    """The training loss became NaN or infinite."""

    exit_code = 1
