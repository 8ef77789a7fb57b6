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
