"""Why a job failed: one failure class, cause, hint and evidence per ended attempt.

``rules.py`` is the table a reader extends (log lines and launcher states,
each rule with an example line its test matches); ``triage.py`` asks the
sources in order of trust and stores nothing itself.
"""

from oumi_jobs.failures.triage import Ending, Failure, decode_failure, encode_failure, failure_on_read, triage

__all__ = ["Ending", "Failure", "decode_failure", "encode_failure", "failure_on_read", "triage"]
