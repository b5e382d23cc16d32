"""Helpers shared by the integration tests and the benchmarks (no pytest imports here)."""
