"""Cancellation: the service, its step recorder and its local and cloud flows."""
