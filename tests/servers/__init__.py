"""Pytest fixtures that start real servers on free loopback ports (one module each)."""
