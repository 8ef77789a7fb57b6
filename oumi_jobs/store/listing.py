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
import zlib
from collections.abc import Iterable, Iterator, Sequence

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
# The keys in render.base.job_document's order, those before "as_of" and those after it; :schema_version,
# :as_of and :with_progress are bound.
_HEAD_KEYS = f"""'schema_version', :schema_version, 'job_id', NULLIF(job_id, ''), 'name', name,
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
    'sweep_id', sweep_id, 'overrides', json(overrides)"""
_TAIL_KEYS = f"""'attempt', attempt, 'max_attempts', {_MAX_ATTEMPTS}, 'attempts', {_ATTEMPTS},
    'failure', CASE WHEN {_STATE} = 'failed' THEN json(failure) END"""
_DOCUMENT = (
    f"json_object({_HEAD_KEYS}, 'as_of', :as_of, {_TAIL_KEYS}, "
    "'progress', CASE WHEN :with_progress THEN json(final_progress) END)"
)

# A finished local job's document never changes but for its "as_of" (and its "progress", null when not asked
# for), so the registry keeps it (the table job_documents) in three texts: before "as_of" (head, without the
# closing brace), after it up to "progress" (tail, without either brace), and the progress.  A listing joins
# them around its own "as_of" for a third of what building the document costs.  The registry's triggers drop
# a kept document whenever its job's row, attempts or dependencies change, whoever changes them; a document
# of another shape (another release's projection or schema version) is not used.
_KEPT = (
    "d.head || ',\"as_of\":' || json_quote(:as_of) || ',' || d.tail || ',\"progress\":' "
    "|| CASE WHEN :with_progress THEN d.progress ELSE 'null' END || '}'"
)
_KEPT_JOIN = "LEFT JOIN job_documents d ON d.job_rowid = jobs.rowid AND d.for_job_id = jobs.job_id AND d.shape = :shape"


def _keep_sql(chosen: str) -> str:
    """Keep the documents of the finished local jobs ``chosen`` selects, built from their rows as they are;
    only those whose progress is kept, so that a kept document is one the listing need read nothing else of."""
    return (
        "INSERT OR REPLACE INTO job_documents (job_rowid, for_job_id, shape, state, head, tail, progress) "
        "SELECT r, job_id, :shape, state, substr(head, 1, length(head) - 1), substr(tail, 2, length(tail) - 2), "
        f"progress FROM (SELECT rowid AS r, job_id, {_STATE} AS state, json_object({_HEAD_KEYS}) AS head, "
        f"json_object({_TAIL_KEYS}) AS tail, json(final_progress) AS progress FROM jobs "
        f"WHERE {FINISHED_LOCAL} AND final_progress IS NOT NULL AND {chosen})"
    )


# What a kept document was built by: this projection (and, in _shape, its schema version).
_PROJECTION = f"{zlib.crc32(_DOCUMENT.encode()):08x}"


def _shape(schema_version: int) -> str:
    return f"{schema_version}:{_PROJECTION}"


# One listed row: (job_id, state, document, progress kept, document kept) for a finished local job,
# (job_id, None, None, 0, 0) for any other.  A finished job whose progress is not kept yet (never read since it
# ended) has its progress read from its files, kept (:meth:`ListingStore.keep_final_progress`), and its
# document built again; a document built rather than read from the registry is kept (:meth:`keep_documents`).
ListedRow = tuple[str, str | None, str | None, int, int]


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
        # A kept document is a finished local job's, with its progress kept: the rest of its row is not read.
        sql = (
            f"SELECT job_id, CASE WHEN d.head IS NOT NULL THEN d.state WHEN {FINISHED_LOCAL} THEN {_STATE} END, "
            f"CASE WHEN d.head IS NOT NULL THEN {_KEPT} WHEN {FINISHED_LOCAL} THEN {_DOCUMENT} END, "
            f"d.head IS NOT NULL OR ({FINISHED_LOCAL} AND final_progress IS NOT NULL), d.head IS NOT NULL "
            f"FROM jobs {_KEPT_JOIN} {where} ORDER BY submit_time {order}, jobs.rowid {order}"
        )
        bound = {**params, **_bound(as_of, schema_version, with_progress)}
        with self._guard():
            cursor = self._db.cursor()
            cursor.row_factory = None
            rows: list[ListedRow] = cursor.execute(sql, bound).fetchall()
            return rows

    def documents(self, job_ids: Sequence[str], *, as_of: str, schema_version: int) -> dict[str, str]:
        """The documents of these finished local jobs, with their progress, by id (others are left out)."""
        bound = _bound(as_of, schema_version, True)
        found: dict[str, str] = {}
        with self._guard():
            cursor = self._db.cursor()
            cursor.row_factory = None
            for chosen, ids in _chunks(job_ids):
                sql = (
                    f"SELECT job_id, CASE WHEN d.head IS NOT NULL THEN {_KEPT} ELSE {_DOCUMENT} END "
                    f"FROM jobs {_KEPT_JOIN} WHERE {FINISHED_LOCAL} AND {chosen}"
                )
                found.update(cursor.execute(sql, {**bound, **ids}).fetchall())
        return found

    def keep_documents(self, job_ids: Sequence[str], *, schema_version: int) -> None:
        """Keep the documents of these finished local jobs (others are left out), in one transaction: built
        from their rows as they are in it, so a job changed since it was listed is kept as it is now."""
        bound = {"shape": _shape(schema_version), "schema_version": schema_version}
        with self._transaction() as db:
            for chosen, ids in _chunks(job_ids):
                db.execute(_keep_sql(chosen), {**bound, **ids})

    def keep_final_progress(self, kept: Iterable[tuple[str, str, str]]) -> None:
        """Keep finished jobs' progress, each ``(job id, submit time, progress as JSON text)``, in one
        transaction; a job of that id submitted at another time (pruned and submitted again) is left alone."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE jobs SET final_progress = ? WHERE job_id = ? AND submit_time = ? AND end_time IS NOT NULL",
                [(text, job_id, submitted) for job_id, submitted, text in kept],
            )


def _bound(as_of: str, schema_version: int, with_progress: bool) -> dict[str, object]:
    return {
        "as_of": as_of, "schema_version": schema_version, "with_progress": with_progress,
        "shape": _shape(schema_version),
    }  # fmt: skip


# Ids bound per statement: SQLite's default limit on variables is 32,766 (999 before 3.32).
_BATCH = 500


def _chunks(job_ids: Sequence[str]) -> Iterator[tuple[str, dict[str, str]]]:
    """``job_id IN (...)`` for at most _BATCH ids at a time, and its bound ids."""
    for start in range(0, len(job_ids), _BATCH):
        chunk = job_ids[start : start + _BATCH]
        yield (
            f"jobs.job_id IN ({','.join(f':j{i}' for i in range(len(chunk)))})",
            {f"j{i}": job_id for i, job_id in enumerate(chunk)},
        )
