"""A new run's params, metric points and end, written in one transaction.

MLflow's `log_batch` on a SQL store spends most of its time in the ORM: a session and a commit
for params, another for metrics, and an object per point, then a query and an object per key
for the latest values. A sweep's parent writes every trial's record to a run it has just
created and nobody else writes to, so the rows can go in as two multi-row inserts and the
latest values be computed here; the run is ended FINISHED in the same commit. MLflow's own
validation, value sanitising and table models are used, so what the store holds is what
`log_batch` and `set_terminated` would have written (a test compares them). Other stores
(servers, PostgreSQL, MySQL: untested here) take `log_batch`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.utils.validation import _validate_metric, _validate_param, _validate_run_id


class BulkWriter:
    """Writes a fresh run's params and metric points (and its end) to a sqlite store at once."""

    def __init__(self, store: Any):
        self.store = store

    @classmethod
    def of(cls, client: Any) -> BulkWriter | None:
        """A writer for the sqlite store behind an MlflowClient; None for any other store (the
        path is compared with log_batch on sqlite only)."""
        store = getattr(getattr(client, "_tracking_client", None), "store", None)
        # Not imported here: a client of a server never loads MLflow's SQL store (~0.8 s).
        sql = sys.modules.get("mlflow.store.tracking.sqlalchemy_store")
        if sql and isinstance(store, sql.SqlAlchemyStore) and store.db_type == "sqlite":
            return cls(store)
        return None

    def write(
        self,
        run_id: str,
        metrics: Sequence[Metric],
        params: Sequence[Param],
        end: int | None = None,
    ) -> None:
        """Params and points of a RUNNING run that has neither yet and, with `end` (ms since
        the epoch), the run FINISHED then. A primary key clash raises and writes nothing."""
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam

        _validate_run_id(run_id)
        for i, p in enumerate(params):
            _validate_param(p.key, p.value, path=f"params[{i}]")
        rows: list[dict[str, Any]] = []
        latest: dict[str, dict[str, Any]] = {}
        seen: set[tuple] = set()
        for i, m in enumerate(metrics):
            _validate_metric(m.key, m.value, m.timestamp, m.step, path=f"metrics[{i}]")
            is_nan, value = self.store.sanitize_metric_value(m.value)
            if (identity := (m.key, value, is_nan, m.timestamp, m.step)) in seen:
                continue  # log_batch drops repeated points too
            seen.add(identity)
            row = {"run_uuid": run_id, "key": m.key, "value": value, "timestamp": m.timestamp}
            row |= {"step": m.step, "is_nan": is_nan}
            rows.append(row)
            old = latest.get(m.key)
            if old is None or _recency(row) > _recency(old):  # ties: the first stays
                latest[m.key] = row
        with self.store.ManagedSessionMaker(read_only=False) as session:
            run = self.store._get_run(run_uuid=run_id, session=session)
            self.store._check_run_is_active(run)
            sql = session.connection()  # the tables' own inserts: no ORM object per row
            if params:
                values = [{"run_uuid": run_id, "key": p.key, "value": p.value} for p in params]
                sql.execute(SqlParam.__table__.insert(), values)
            if rows:
                sql.execute(SqlMetric.__table__.insert(), rows)
                sql.execute(SqlLatestMetric.__table__.insert(), list(latest.values()))
            if end is not None:  # as set_terminated would: the ORM row is flushed on commit
                run.status, run.end_time = "FINISHED", end


def _recency(row: dict[str, Any]) -> tuple:
    """MLflow's order of a metric's values: the latest is the greatest (step, time, value)."""
    return row["step"], row["timestamp"], row["value"]
