"""Benchmarks with recorded results: ceilings, ingest, profile (run `python -m bench.run --help`)."""
