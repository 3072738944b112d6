"""Read models: what the API, the dashboard and /metrics show, in few queries."""
