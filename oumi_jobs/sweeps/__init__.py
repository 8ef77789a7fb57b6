"""Sweeps: many jobs from one config, each an ordinary job, tracked together."""
