"""Benchmark harness for domain-specific embedding alignment."""

__version__ = "0.1.0"
