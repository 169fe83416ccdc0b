"""Tiny trainers for the launcher tests: each works as a command and as a python launcher target."""
