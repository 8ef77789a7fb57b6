"""The ``oumi-jobs`` command line."""

from oumi_jobs.cli.app import app, main

__all__ = ["app", "main"]
