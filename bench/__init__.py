"""Benchmarks of snakesweep: scripts that print figures (see bench/README.md); never timed assertions."""
