"""What a person sees of the registry's upkeep: prune, import, and the registry's check and recovery."""

from __future__ import annotations

import sys

from oumi_jobs.cli.output import print_line
from oumi_jobs.legacy import ImportResult
from oumi_jobs.prune import PruneResult
from oumi_jobs.registry_repair import Recovery, RegistryCheck


def print_prune(result: PruneResult) -> None:
    verb = "would remove" if result.dry_run else "removed"
    print_line(f"{verb} {len(result.removed)} job(s); kept {result.kept_running} not done")
    for job_id in result.removed:
        print_line(f"  {job_id}")


def print_import(result: ImportResult) -> None:
    print_line(
        f"imported {len(result.imported)} job(s), {len(result.already_present)} already present, "
        f"{len(result.skipped)} skipped"
    )
    for skipped in result.skipped:
        who = f" ({skipped.job_id})" if skipped.job_id else ""
        sys.stderr.write(f"skipped entry {skipped.index}{who}: {skipped.reason}\n")
    sys.stderr.flush()


# -- the registry itself -----------------------------------------------------------
def print_registry_check(check: RegistryCheck) -> None:
    if not check.exists:
        print_line(f"no registry yet at {check.path} (it is made on first use)")
        return
    if check.ok:
        pending = (
            f"; {len(check.migrations_pending)} migration(s) to apply on next use" if check.migrations_pending else ""
        )
        print_line(f"{check.path}: ok ({check.jobs} job(s), {check.cancellations} cancellation(s){pending})")
        return
    print_line(f"{check.path} is damaged:")
    for problem in check.problems:
        print_line(f"  {problem}")


def print_recovery(recovery: Recovery) -> None:
    print_line(f"moved the damaged registry aside: {', '.join(str(p) for p in recovery.moved_to)}")
    print_line(f"new registry {recovery.path}:")
    for table in recovery.tables:
        lost = "an unknown number" if table.lost is None else str(table.lost)
        print_line(f"  {table.table}: {table.saved} row(s) saved, {lost} lost")
        for why in table.errors:
            print_line(f"    {why}")
        if table.lost_keys:
            print_line(f"    not saved: {', '.join(table.lost_keys[:20])}{' ...' if len(table.lost_keys) > 20 else ''}")
