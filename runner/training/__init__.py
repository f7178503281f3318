"""The training stage: a trial spec in, a trial result and its complete record out (pure: no
MLflow, no files written). `trial` trains, `files` draws the run's files and builds the record,
`plots` draws the pictures."""
