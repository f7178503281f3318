"""The commands behind `runner.cli`: each drives the stages for one `mgrun` subcommand."""
