"""What oumi-jobs knows about clouds by name, in one place (plain data: nothing here imports oumi).

A cloud's name decides a few things before any cloud is asked: whether a job
runs on this machine, whether SkyPilot carries it (ephemeral disks, re-used
clusters: see guidance), whether its jobs can be listed from a new process,
whether its clusters can be stopped, and how a Slurm cluster's name gives the
user to log in as.
"""

from __future__ import annotations

# Jobs of this cloud run on this machine under oumi-jobs' own supervisor.
LOCAL_CLOUD = "local"
# The queue a local job joins when its submit names no cluster.
DEFAULT_LOCAL_CLUSTER = "local"

# Clouds oumi.launcher 0.9 ships with; those it reaches through SkyPilot
# share SkyPilot's behaviour.  A cloud registered at run time through oumi's
# register_cloud_builder is accepted too (the launcher is asked for those).
SKY_CLOUDS = frozenset({"aws", "azure", "gcp", "lambda", "runpod", "k8s", "nebius", "sky-slurm"})
KNOWN_CLOUDS = SKY_CLOUDS | {LOCAL_CLOUD, "slurm", "polaris", "frontier", "perlmutter", "modal"}

# Oumi's own "local" cloud keeps its jobs in one process's memory: asking it
# from a new process always finds nothing, and oumi-jobs has its local jobs.
NOT_LISTED = frozenset({"local"})

# Clouds whose oumi 0.9 clusters do nothing for stop and down (the methods are
# `pass`): the cluster is a shared machine that outlives any one job.
NO_STOP_OR_DOWN = frozenset({"slurm", "polaris", "frontier", "perlmutter"})


# Clouds whose launches take neither an autostop nor a tear-down when idle: clusters that are shared
# machines (Slurm and the like), oumi's in-process local cloud, Modal (no idle cluster to stop).
NO_IDLE_ACTIONS = NO_STOP_OR_DOWN | {LOCAL_CLOUD, "modal"}
# SkyPilot clouds that cannot stop a cluster (oumi 0.9 sets no autostop there); they can tear one down.
NO_STOP = frozenset({"lambda", "runpod"})


def idle_action_problem(cloud: str, *, autostop: bool, down: bool) -> str | None:
    """Why ``cloud`` cannot take ``--autostop``/``--down`` at launch, or None (a registered custom cloud: it
    gets them as launcher options)."""
    if not (autostop or down):
        return None
    asked = " and ".join(o for o, wanted in (("--autostop", autostop), ("--down", down)) if wanted)
    if cloud in NO_IDLE_ACTIONS:
        return f"{asked}: {cloud} clusters are not stopped or torn down when idle (only SkyPilot clouds are)"
    if autostop and not down and cloud in NO_STOP:
        return f"--autostop: {cloud} cannot stop a cluster; --autostop with --down tears it down when idle"
    return None


def is_sky_cloud(cloud: str) -> bool:
    return cloud in SKY_CLOUDS


def is_listed(cloud: str) -> bool:
    """Whether asking ``cloud`` for its jobs can find any (``local`` never does: see NOT_LISTED)."""
    return cloud not in NOT_LISTED


def listable(clouds: list[str]) -> list[str]:
    """``clouds`` less those whose jobs cannot be listed, in their order."""
    return [name for name in clouds if is_listed(name)]


def stops_and_downs(cloud: str) -> bool:
    """Whether stop and down of a cluster of ``cloud`` do anything (a registered custom cloud: assumed so)."""
    return cloud not in NO_STOP_OR_DOWN


def missing_cluster_is_gone(cloud: str) -> bool:
    """Whether a cluster ``cloud`` does not know is gone (torn down, with its jobs).

    Not for Slurm-like clouds, whose clusters are shared machines a process
    finds through its own connection settings (``OUMI_SLURM_CONNECTIONS``):
    there a missing cluster means this process was not told of it.  Nor for
    oumi's in-process ``local``, whose clusters live in one process's memory.
    """
    return cloud not in NO_STOP_OR_DOWN and cloud not in NOT_LISTED


def cluster_user(cluster: str | None) -> str | None:
    """The user of a ``user@host`` cluster name (how oumi's Slurm clouds name a cluster), else None.

    oumi.launcher logs in to a Slurm cluster as ``JobConfig.user``, which must
    equal the cluster name's user part.
    """
    if cluster and "@" in cluster:
        return cluster.split("@", 1)[0]
    return None
