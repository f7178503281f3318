"""Benchmarks, run by `make bench` (`python -m tests.bench [name ...]`); never collected by pytest.

Each benchmark is a module here with a `main(argv) -> int`, registered in `__main__.BENCHMARKS`.
"""
