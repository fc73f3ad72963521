"""Helpers shared by tests: loopback stand-ins for external services."""
