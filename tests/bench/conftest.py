"""Benchmarks: run by hand, never collected by pytest."""

collect_ignore_glob = ["bench_*.py"]
