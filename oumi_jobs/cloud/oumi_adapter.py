"""The in-process cloud adapter: ``oumi.launcher`` (and, through it, ``sky``) called in this process.

With :mod:`~oumi_jobs.cloud.oumi_loading` (the lazy import, logs kept off
stdout) and :mod:`~oumi_jobs.cloud.oumi_checks` (config and credentials
checks), the only modules of oumi-jobs that import ``oumi`` or ``sky``.

Every call into a cloud runs under a time limit
(:func:`~oumi_jobs.cloud.time_limit.with_time_limit`).  We do not
use ``launcher.status()``: it builds every registered cloud even when asked for
one, and one unreachable cloud then fails them all.

What comes out is oumi-jobs' own data (:mod:`oumi_jobs.cloud.model`), never an
oumi object: see :class:`oumi_jobs.cloud.adapter.CloudAdapter` for the contract.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from typing import Any

from oumi_jobs.cloud import facts
from oumi_jobs.cloud import schema as oumi_schema
from oumi_jobs.cloud.model import (
    CloudJob,
    ClusterInfo,
    ClusterOutcome,
    ConfigProblem,
    CredentialCheck,
    LaunchResult,
    LogLines,
    Tree,
)
from oumi_jobs.cloud.oumi_checks import check_settings, config_classes, sky_credentials
from oumi_jobs.cloud.oumi_loading import before_oumi, load
from oumi_jobs.cloud.oumi_states import from_job_status
from oumi_jobs.cloud.time_limit import with_time_limit
from oumi_jobs.errors import CloudUnreachableError, ClusterNotFoundError


def _cluster(cloud: str, cluster: str) -> Any:
    found = load().get_cloud(cloud).get_cluster(cluster)
    if found is None:
        raise ClusterNotFoundError(cloud, cluster)
    return found


def _sky_clusters(cloud: str, names: list[str]) -> dict[str, ClusterInfo]:
    """What SkyPilot's status says of these clusters (oumi's SkyCluster reads the same records)."""
    before_oumi()
    import sky

    found = {}
    for record in sky.stream_and_get(sky.status(cluster_names=names)):
        name = _field(record, "name")
        if not name:
            continue
        status = _field(record, "status")
        autostop = _field(record, "autostop")
        try:
            price: float | None = float(_field(record, "handle").get_hourly_price())
        except Exception:  # no handle, or a cloud SkyPilot cannot price: no price, as oumi does
            price = None
        minutes = int(autostop) if isinstance(autostop, (int, float)) and autostop >= 0 else None  # -1: none
        found[name] = ClusterInfo(
            cloud=cloud, name=name, state=str(getattr(status, "value", status)) if status is not None else None,
            cost_per_hour=price, autostop_minutes=minutes,
            autodown=bool(_field(record, "to_down")) if minutes is not None else None,
        )  # fmt: skip
    return found


def _field(record: Any, key: str) -> Any:
    """A field of a SkyPilot status record: a dict in some versions, an object in others."""
    try:
        return record[key]
    except (KeyError, TypeError, IndexError):
        return getattr(record, key, None)


def _sky_autodown(cluster: str, idle_minutes: int | None) -> None:
    """Tear ``cluster`` down once idle: oumi 0.9's SkyPilot launch passes ``idle_minutes_to_autostop`` to
    ``sky.launch`` but drops ``down``, so it is set after the launch, as ``sky launch --down`` does (idle 0:
    as soon as the job queue is empty; the last autostop setting wins over oumi's default of 60 minutes)."""
    before_oumi()
    import sky

    sky.stream_and_get(sky.autostop(cluster, idle_minutes or 0, down=True))


def _job_config(config: str | Mapping[str, Any]) -> Any:
    """An oumi JobConfig from a job-config YAML path, or from the same settings as a dict."""
    import yaml

    before_oumi()
    from oumi.core.configs import JobConfig

    if isinstance(config, str):
        return JobConfig.from_yaml(config)
    # Through a file, so a dict is read exactly as the YAML file would be
    # (from_yaml escapes ${...}, which oumi's from_str would interpolate).
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="oumi-jobs-") as handle:
        yaml.safe_dump(dict(config), handle, sort_keys=False)
        handle.flush()
        return JobConfig.from_yaml(handle.name)


class OumiAdapter:
    """:class:`~oumi_jobs.cloud.adapter.CloudAdapter` over ``oumi.launcher`` in this process."""

    def prepare(self) -> None:
        load()

    def known_clouds(self, *, timeout_s: float) -> list[str]:
        return with_time_limit(lambda: list(load().which_clouds()), timeout_s, "oumi.launcher's clouds")

    def get_job(self, cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float) -> CloudJob | None:
        def ask() -> CloudJob | None:
            job_status = _cluster(cloud, cluster).get_job(launcher_job_id)
            return None if job_status is None else from_job_status(cloud, cluster, job_status)

        return with_time_limit(ask, timeout_s, f"cloud {cloud!r}")

    def list_jobs(self, cloud: str, *, timeout_s: float) -> list[CloudJob]:
        def ask() -> list[CloudJob]:
            found = []
            for cluster in load().get_cloud(cloud).list_clusters():
                name = cluster.name()
                found += [from_job_status(cloud, name, js) for js in cluster.get_jobs()]
            return found

        return with_time_limit(ask, timeout_s, f"cloud {cloud!r}")

    def list_clusters(self, cloud: str, *, timeout_s: float) -> list[ClusterInfo]:
        def ask() -> list[ClusterInfo]:
            names = [cluster.name() for cluster in load().get_cloud(cloud).list_clusters()]
            # oumi's BaseCluster tells only a name; SkyPilot's own status tells state, price and autostop.
            told = _sky_clusters(cloud, names) if facts.is_sky_cloud(cloud) and names else {}
            return [told.get(name) or ClusterInfo(cloud, name) for name in names]

        return with_time_limit(ask, timeout_s, f"cloud {cloud!r}")

    def server_start_note(self, clouds: list[str], *, timeout_s: float) -> str | None:
        if not any(facts.is_sky_cloud(cloud) for cloud in clouds):
            return None  # and SkyPilot is not even imported

        def ask() -> str | None:
            before_oumi()
            from sky.server import common

            # SkyPilot's own test before it starts a server: a local endpoint that does not answer.
            url = common.get_server_url()
            if not common.is_api_server_local(url):
                return None
            if common.get_api_server_status(url).status != common.ApiServerStatus.UNHEALTHY:
                return None
            return (
                f"no SkyPilot API server answers at {url}: SkyPilot starts one now, in the background (about "
                "20 s; its log: ~/.sky/api_server/server.log). It keeps running after this command; "
                "`sky api stop` ends it, SKYPILOT_API_SERVER_ENDPOINT names another"
            )

        try:
            return with_time_limit(ask, timeout_s, "SkyPilot's API server")
        except CloudUnreachableError:  # SkyPilot missing or odd: asking the clouds will say what is wrong
            return None

    def up(
        self,
        config: str | Mapping[str, Any],
        cluster: str | None,
        *,
        timeout_s: float,
        options: Mapping[str, Any] | None = None,
    ) -> LaunchResult:
        settings = dict(options or {})

        def launch() -> LaunchResult:
            job_config = _job_config(config)
            launched, job_status = load().up(job_config, cluster, **settings)
            name = job_status.cluster or launched.name()
            cloud = job_config.resources.cloud
            if settings.get("down") and facts.is_sky_cloud(cloud):
                _sky_autodown(name, settings.get("idle_minutes_to_autostop"))
            return LaunchResult(name, from_job_status(cloud, name, job_status))

        return with_time_limit(launch, timeout_s, "launcher.up")

    def cancel(self, cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float) -> CloudJob:
        def ask() -> CloudJob:
            return from_job_status(cloud, cluster, load().cancel(launcher_job_id, cloud, cluster))

        return with_time_limit(ask, timeout_s, f"cancel on {cloud!r}")

    def log_stream(self, cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float) -> LogLines:
        def open_stream() -> Any:
            return _cluster(cloud, cluster).get_logs_stream(cluster, launcher_job_id)

        stream = with_time_limit(open_stream, timeout_s, f"logs of {cloud!r}")
        return LogLines(iter(stream.readline, ""), stream.close)

    def stop(self, cloud: str, cluster: str, *, timeout_s: float) -> ClusterOutcome:
        return self._cluster_action("stop", cloud, cluster, timeout_s)

    def down(self, cloud: str, cluster: str, *, timeout_s: float) -> ClusterOutcome:
        return self._cluster_action("down", cloud, cluster, timeout_s)

    def _cluster_action(self, action: str, cloud: str, cluster: str, timeout_s: float) -> ClusterOutcome:
        def act() -> None:
            _cluster(cloud, cluster)  # a missing cluster is ClusterNotFoundError, not the launcher's ValueError
            getattr(load(), action)(cloud, cluster)

        # Called on every cloud, the no-op ones too: the cluster's existence is checked all the same.
        with_time_limit(act, timeout_s, f"{action} on {cloud!r}")
        if not facts.stops_and_downs(cloud):
            detail = f"{cloud} clusters have no {action}: oumi.launcher does nothing for it, jobs keep running"
            return ClusterOutcome(cloud, cluster, action, acted=False, detail=detail)
        return ClusterOutcome(cloud, cluster, action, acted=True, detail=f"{action} of {cluster} requested")

    def settings_schema(self, *, timeout_s: float) -> dict[str, Tree | None]:
        return with_time_limit(lambda: oumi_schema.build(config_classes()), timeout_s, "oumi's config classes")

    def check_config(self, settings: Mapping[str, Any], kind: str, *, timeout_s: float) -> list[ConfigProblem]:
        return with_time_limit(lambda: check_settings(settings, kind), timeout_s, "oumi's config check")

    def check_credentials(self, cloud: str, *, timeout_s: float) -> CredentialCheck:
        if not facts.is_sky_cloud(cloud):
            return CredentialCheck(cloud, None, f"oumi.launcher has no credentials check for {cloud}")
        return with_time_limit(lambda: sky_credentials(cloud), timeout_s, f"SkyPilot's check of {cloud}")
