"""oumi-jobs: submit, watch and cancel Oumi jobs, locally or on any cloud.

The package root stays import-light: the command-line tool imports it on every
start, so heavy modules (and never ``oumi``/``torch``/``sky``) load only where
they are needed.  The library API lives in :mod:`oumi_jobs.api`.
"""

__version__ = "0.1.0"
