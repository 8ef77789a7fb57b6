"""The lean listing: finished local jobs projected by SQLite straight into their JSON documents.

``list --json`` over thousands of jobs is mostly finished local jobs, whose
documents depend on nothing but their row: no process to look at, no cloud to
ask.  Building a record, a view and a dictionary for each in Python costs more
than the rest of the command together, so SQLite builds each such document
with ``json_object`` and the caller joins the texts.

The projection repeats rules written in Python elsewhere, and
tests/test_listing.py checks that both paths give identical documents:

* the state of a local job with an exit record (``states.local_state``) and
  its status string (``states.describe_exit``);
* the job document of the JSON contract (``render.base.job_document``);
* a job's estimated cost (``costs.cost_between``);
* its ``failure``, stored when it ended, shown only for a failed job (``failures.failure_on_read``).
"""

from __future__ import annotations

import signal

from oumi_jobs.costs import COST_DECIMALS
from oumi_jobs.store.db import Database
from oumi_jobs.store.jobs import FINISHED_LOCAL, job_filter

# `killed by SIGKILL`: signal names as states.signal_name gives them.
_SIGNAL_NAMES = " ".join(f"WHEN {int(s)} THEN '{s.name}'" for s in signal.Signals)
_STATUS = (
    f"CASE WHEN exit_signal IS NOT NULL THEN 'killed by ' || CASE exit_signal {_SIGNAL_NAMES} "
    "ELSE 'signal ' || exit_signal END "
    "WHEN exit_code IS NOT NULL THEN 'exited ' || exit_code "
    "ELSE COALESCE(end_detail, 'ended') END"
)
_STATE = (
    "CASE WHEN cancel_requested THEN 'cancelled' "
    "WHEN exit_code = 0 AND exit_signal IS NULL THEN 'succeeded' ELSE 'failed' END"
)
_DEPENDS_ON = (
    "json((SELECT json_group_array(depends_on) FROM "
    "(SELECT depends_on FROM job_dependencies d WHERE d.job_id = jobs.job_id ORDER BY d.rowid)))"
)
# costs.cost_between: the price times the hours from the launch to the end, seconds to the millisecond.
_COST_SO_FAR = (
    "CASE WHEN cost_per_hour IS NULL OR started_at IS NULL THEN NULL ELSE round(cost_per_hour * "
    f"max(round((julianday(end_time) - julianday(started_at)) * 86400.0, 3), 0.0) / 3600.0, {COST_DECIMALS}) END"
)
# The keys in render.base.job_document's order; :schema_version and :as_of are bound.
_DOCUMENT = f"""json_object(
    'schema_version', :schema_version, 'job_id', NULLIF(job_id, ''), 'name', name,
    'state', {_STATE}, 'status', {_STATUS}, 'done', json('true'),
    'cloud', cloud, 'cluster', cluster, 'launcher_job_id', launcher_job_id, 'command', command,
    'config_path', config_path, 'model_name', model_name, 'output_dir', output_dir,
    'submit_time', submit_time, 'start_time', started_at, 'end_time', end_time,
    'exit_code', exit_code, 'exit_signal', exit_signal, 'pid', pid,
    'containment', containment, 'external', json('false'),
    'cancel_requested', json(CASE WHEN cancel_requested THEN 'true' ELSE 'false' END),
    'depends_on', {_DEPENDS_ON}, 'detail', end_detail,
    'stdout_path', stdout_path, 'stderr_path', stderr_path,
    'cost_per_hour', cost_per_hour, 'cost_so_far', {_COST_SO_FAR},
    'sweep_id', sweep_id, 'overrides', json(overrides), 'as_of', :as_of,
    'failure', CASE WHEN {_STATE} = 'failed' THEN json(failure) END)"""

# One listed row: (job_id, state, document) for a finished local job, (job_id, None, None) for any other.
ListedRow = tuple[str, str | None, str | None]


class ListingStore(Database):
    def listing(
        self,
        *,
        cloud: str | None = None,
        cluster: str | None = None,
        since: str | None = None,
        newest_first: bool = True,
        as_of: str,
        schema_version: int,
        sweep: str | None = None,
    ) -> list[ListedRow]:
        """Every job the filters select, in listing order; finished local jobs come with their document."""
        where, params = job_filter(cloud=cloud, cluster=cluster, since=since, sweep=sweep)
        order = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT job_id, CASE WHEN {FINISHED_LOCAL} THEN {_STATE} END, "
            f"CASE WHEN {FINISHED_LOCAL} THEN {_DOCUMENT} END "
            f"FROM jobs {where} ORDER BY submit_time {order}, rowid {order}"
        )
        with self._guard():
            cursor = self._db.cursor()
            cursor.row_factory = None
            rows: list[ListedRow] = cursor.execute(
                sql, {**params, "as_of": as_of, "schema_version": schema_version}
            ).fetchall()
            return rows
