"""Benchmarks of tes-server against baselines measured in the same run (see README.md)."""
