"""Alerts: the operator's rules, outbox rows written with a job's end, and their delivery."""
