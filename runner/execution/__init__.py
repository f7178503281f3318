"""The execution stage: trials fanned out to workers (`backends`), supervised through dead
workers (`supervisor`), each worker running `worker.work` (spec in, complete record out). Dask
lives in `dask_backend`, checked first by `preflight` with `probe`; it is imported only when a
sweep asks for it."""
