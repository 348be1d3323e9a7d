"""Benchmarks of the pipeline against raw aiokafka: see bench/README.md."""
