"""Benchmarks for loopdash, run by hand (see bench/README.md); nothing here is a test."""
