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
* its ``failure``, stored when it ended, shown only for a failed job (``failures.failure_on_read``);
* its ``progress``, stored the first time it was read after the job ended (``progress.reading``), so a
  finished job's files are read once in its life, and the listing after that is this one query.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Sequence

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
    "WHEN exit_code = 0 AND exit_signal IS NULL AND failure IS NULL THEN 'succeeded' ELSE 'failed' END"
)
# The aggregate only for jobs with a dependency (the IN list is built once): a fifth of the query's time.
_DEPENDS_ON = (
    "CASE WHEN job_id IN (SELECT job_id FROM job_dependencies) THEN "
    "json((SELECT json_group_array(depends_on) FROM "
    "(SELECT depends_on FROM job_dependencies d WHERE d.job_id = jobs.job_id ORDER BY d.rowid))) "
    "ELSE json('[]') END"
)
# costs.cost_between: the price times the hours from the launch to the end, seconds to the millisecond.
_COST_SO_FAR = (
    "CASE WHEN cost_per_hour IS NULL OR started_at IS NULL THEN NULL ELSE round(cost_per_hour * "
    f"max(round((julianday(end_time) - julianday(started_at)) * 86400.0, 3), 0.0) / 3600.0, {COST_DECIMALS}) END"
)
# render.base.attempts_document: the attempts kept, then the current one (its failure shown as the job's).
# json_object's result is JSON already where it is an argument of json_array or json_insert: no json() to
# parse it again (a tenth of list --json's query over 10,000 jobs).
_RESUME = (
    "'resumed_from_step', json_extract({r}, '$.resumed_from_step'), "
    "'first_step', json_extract({r}, '$.first_step'), 'redone_steps', json_extract({r}, '$.redone_steps')"
)
_CURRENT_ATTEMPT = (
    f"json_object('attempt', attempt, 'state', {_STATE}, 'start_time', started_at, 'end_time', end_time, "
    "'exit_code', exit_code, 'exit_signal', exit_signal, "
    f"'failure', CASE WHEN {_STATE} = 'failed' THEN json(failure) END, {_RESUME.format(r='resume')})"
)
_ATTEMPTS = (
    "CASE WHEN attempt > 1 THEN json_insert(COALESCE((SELECT json_group_array(json(entry)) FROM (SELECT "
    "json_object('attempt', a.attempt, 'state', a.state, 'start_time', a.start_time, 'end_time', a.end_time, "
    "'exit_code', a.exit_code, 'exit_signal', a.exit_signal, 'failure', json(a.failure), "
    f"{_RESUME.format(r='a.resume')}) AS entry FROM attempts a WHERE a.job_id = jobs.job_id ORDER BY a.attempt)), "
    f"'[]'), '$[#]', {_CURRENT_ATTEMPT}) ELSE json_array({_CURRENT_ATTEMPT}) END"
)
_MAX_ATTEMPTS = "max(COALESCE(json_extract(policy, '$.retries'), 0) + 1, attempt)"
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
    'attempt', attempt, 'max_attempts', {_MAX_ATTEMPTS}, 'attempts', {_ATTEMPTS},
    'failure', CASE WHEN {_STATE} = 'failed' THEN json(failure) END,
    'progress', CASE WHEN :with_progress THEN json(final_progress) END)"""

# One listed row: (job_id, state, document, progress kept) for a finished local job, (job_id, None, None, 0)
# for any other.  A finished job whose progress is not kept yet (never read since it ended) has its progress
# read from its files, kept (:meth:`ListingStore.keep_final_progress`), and its document built again.
ListedRow = tuple[str, str | None, str | None, int]


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
        with_progress: bool = True,
    ) -> list[ListedRow]:
        """Every job the filters select, in listing order; finished local jobs come with their document."""
        where, params = job_filter(cloud=cloud, cluster=cluster, since=since, sweep=sweep)
        order = "DESC" if newest_first else "ASC"
        sql = (
            f"SELECT job_id, CASE WHEN {FINISHED_LOCAL} THEN {_STATE} END, "
            f"CASE WHEN {FINISHED_LOCAL} THEN {_DOCUMENT} END, "
            f"{FINISHED_LOCAL} AND final_progress IS NOT NULL "
            f"FROM jobs {where} ORDER BY submit_time {order}, rowid {order}"
        )
        bound = {**params, "as_of": as_of, "schema_version": schema_version, "with_progress": with_progress}
        with self._guard():
            cursor = self._db.cursor()
            cursor.row_factory = None
            rows: list[ListedRow] = cursor.execute(sql, bound).fetchall()
            return rows

    def documents(self, job_ids: Sequence[str], *, as_of: str, schema_version: int) -> dict[str, str]:
        """The documents of these finished local jobs, with their progress, by id (others are left out)."""
        bound = {"as_of": as_of, "schema_version": schema_version, "with_progress": True}
        found: dict[str, str] = {}
        with self._guard():
            cursor = self._db.cursor()
            cursor.row_factory = None
            for start in range(0, len(job_ids), _BATCH):
                chunk = list(job_ids[start : start + _BATCH])
                marks = ",".join(f":j{i}" for i in range(len(chunk)))
                sql = f"SELECT job_id, {_DOCUMENT} FROM jobs WHERE {FINISHED_LOCAL} AND job_id IN ({marks})"
                chosen = {f"j{i}": job_id for i, job_id in enumerate(chunk)}
                found.update(cursor.execute(sql, {**bound, **chosen}).fetchall())
        return found

    def keep_final_progress(self, kept: Iterable[tuple[str, str, str]]) -> None:
        """Keep finished jobs' progress, each ``(job id, submit time, progress as JSON text)``, in one
        transaction; a job of that id submitted at another time (pruned and submitted again) is left alone."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE jobs SET final_progress = ? WHERE job_id = ? AND submit_time = ? AND end_time IS NOT NULL",
                [(text, job_id, submitted) for job_id, submitted, text in kept],
            )


# Ids bound per statement: SQLite's default limit on variables is 32,766 (999 before 3.32).
_BATCH = 500
