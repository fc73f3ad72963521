"""Tests of the pipeline stages (workers/stages): pure functions and their HTTP edges on loopback."""
