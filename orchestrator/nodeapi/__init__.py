"""The HSTS Node API client; wire models stay inside this package."""
