"""Scenario tests: one behaviour across modules, over the real app, real sockets or real processes."""
