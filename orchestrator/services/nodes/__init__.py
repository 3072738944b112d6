"""Nodes: the registry, the pooled clients, reachability checks, and node-call metrics."""
