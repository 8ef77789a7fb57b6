"""The ``oumi-jobs`` command line: its root is :mod:`oumi_jobs.cli.app` (the entry point), one module per area."""
