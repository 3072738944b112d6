"""Tests of the HSTS Node API simulator."""
