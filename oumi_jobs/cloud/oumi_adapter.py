"""The in-process cloud adapter: the only module of oumi-jobs that imports ``oumi`` (and, through it, ``sky``).

``import oumi.launcher`` costs 10-15 s (it pulls in torch and transformers),
so it happens lazily, once per process, and only in commands that touch a
cloud.  Telemetry of Oumi and SkyPilot is off unless the user turned it on.

stdout belongs to oumi-jobs (``id=$(oumi-jobs submit -q ...)``, ``--json``),
but oumi's and SkyPilot's loggers write to stdout, and with a custom cloud
loaded through ``OUMI_EXTRA_DEPS_FILE`` oumi logs at INFO.  Their handlers are
pointed at stderr: those the import of ``oumi.launcher`` made (other
libraries' too), and any that oumi or SkyPilot makes later, before it writes
its first line (see :func:`_route_library_logs`).

Every call into a cloud runs in a daemon thread with a time limit: a cloud
that hangs makes its jobs ``unknown`` with the reason, never the command hang
(the thread is abandoned; being a daemon it never delays the exit).  We do not
use ``launcher.status()``: it builds every registered cloud even when asked for
one, and one unreachable cloud then fails them all.

What comes out is oumi-jobs' own data (:mod:`oumi_jobs.cloud.model`), never an
oumi object: see :class:`oumi_jobs.cloud.adapter.CloudAdapter` for the contract.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

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
from oumi_jobs.errors import CloudCallError, CloudTimeoutError, CloudUnreachableError, ClusterNotFoundError
from oumi_jobs.states import State

T = TypeVar("T")

_load_lock = threading.Lock()
_module: Any = None
# The top-level logger names whose handlers must never write to stdout: oumi's, SkyPilot's, and those of
# the libraries that the import of oumi.launcher set up.  Only these: a program using oumi_jobs as a
# library keeps its own loggers as it made them.
_routed: set[str] = {"oumi", "sky"}
_routing_lock = threading.Lock()
_routing_on = False


def _before_oumi() -> None:
    """What every import of oumi is preceded by."""
    # Telemetry off unless the user said otherwise: with no internet it only costs time.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("SKYPILOT_DISABLE_USAGE_COLLECTION", "1")
    _route_library_logs()


def load() -> Any:
    """``oumi.launcher``, imported once."""
    global _module
    with _load_lock:
        if _module is None:
            _before_oumi()
            known = set(logging.Logger.manager.loggerDict)
            import oumi.launcher

            made = {name.split(".", 1)[0] for name in logging.Logger.manager.loggerDict} - known
            _route_library_logs(made)
            _module = oumi.launcher
    return _module


def _route_library_logs(namespaces: Iterable[str] = ()) -> None:
    """Point the stdout handlers of the ``_routed`` loggers (plus ``namespaces``) at stderr, now and from now on.

    Now: every such logger's handlers.  From now on: a log record factory that,
    before a record of those loggers reaches a handler, re-points the handlers
    on its way (SkyPilot makes some as its modules are imported, inside a
    cloud call, and logs through them at once).
    """
    global _routing_on
    with _routing_lock:
        _routed.update(namespaces)
        for name, logger in list(logging.Logger.manager.loggerDict.items()):
            if isinstance(logger, logging.Logger) and name.split(".", 1)[0] in _routed:
                _to_stderr(logger)
        if _routing_on:
            return
        _routing_on = True
        previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.name.split(".", 1)[0] in _routed:
            logger: logging.Logger | None = logging.getLogger(record.name)
            while logger is not None:  # the handlers this record will reach
                _to_stderr(logger)
                logger = logger.parent if logger.propagate else None
        return record

    logging.setLogRecordFactory(factory)


def _to_stderr(logger: logging.Logger) -> None:
    stderr = sys.__stderr__ or sys.stderr
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and _is_stdout(handler.stream):
            handler.setStream(stderr)
        console = getattr(handler, "console", None)  # rich's RichHandler (oumi's on a terminal)
        if console is not None and _is_stdout(getattr(console, "file", None)):
            console.file = stderr


def _is_stdout(stream: Any) -> bool:
    if stream is None:
        return False
    if stream is sys.stdout or stream is sys.__stdout__:
        return True
    try:
        return bool(stream.fileno() == 1)
    except (AttributeError, OSError, ValueError):  # not a file (a test's capture), or closed
        return False


# The first word of a launcher's status string, mapped to our states.  The
# string is trusted over the JobState enum: oumi 0.9 maps Slurm's
# "CANCELLED by 0" to PENDING while its status string says CANCELLED.
_STATUS_WORDS: dict[str, State] = {
    **dict.fromkeys(["PENDING", "QUEUED", "CONFIGURING", "REQUEUED", "RESIZING", "SETTING_UP", "INIT", "STARTING",
                     "SUSPENDED"], State.PENDING),
    **dict.fromkeys(["RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"], State.RUNNING),
    **dict.fromkeys(["SUCCEEDED", "COMPLETED", "DONE"], State.SUCCEEDED),
    **dict.fromkeys(["FAILED", "FAILED_SETUP", "FAILED_DRIVER", "FAILED_PRECHECKS", "FAILED_NO_RESOURCE",
                     "FAILED_CONTROLLER", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
                     "PREEMPTED", "STOPPED", "ERROR"], State.FAILED),
    **dict.fromkeys(["CANCELLED", "CANCELED", "CANCELLING", "REVOKED"], State.CANCELLED),
}  # fmt: skip
_ENUM_STATES = {
    "pending": State.PENDING,
    "running": State.RUNNING,
    "succeeded": State.SUCCEEDED,
    "failed": State.FAILED,
    "cancelled": State.CANCELLED,
}


def map_state(status: str | None, state_value: str | None, done: bool | None) -> State:
    """Our state for a launcher job, from its status string first and its enum second."""
    word = (status or "").strip().split(" ", 1)[0].rstrip("+").upper()
    if word in _STATUS_WORDS:
        return _STATUS_WORDS[word]
    mapped = _ENUM_STATES.get((state_value or "").lower())
    if mapped is not None:
        return mapped
    return State.FAILED if done else State.UNKNOWN


def _from_job_status(cloud: str, cluster: str, job_status: Any) -> CloudJob:
    state_enum = getattr(job_status, "state", None)
    state = map_state(job_status.status, getattr(state_enum, "value", None), job_status.done)
    return CloudJob(
        cloud=cloud,
        cluster=job_status.cluster or cluster,
        launcher_job_id=str(job_status.id),
        name=job_status.name or None,
        state=state,
        status=job_status.status,
        done=state.done,
        submit_time=job_status.submit_time,
        end_time=job_status.end_at,
        start_time=getattr(job_status, "start_at", None),
        cost_per_hour=getattr(job_status, "cost_per_hour", None),
        metadata=str(getattr(job_status, "metadata", "") or ""),
    )


def with_time_limit(call: Callable[[], T], timeout_s: float, what: str) -> T:
    """Run ``call`` in a daemon thread; CloudUnreachableError if it outlasts ``timeout_s``, CloudCallError if it
    raises (with the error's type name and message)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # reported to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"oumi-jobs {what}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise CloudTimeoutError(f"{what} did not answer within {timeout_s:g} s")
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, CloudUnreachableError):
            raise error
        raise CloudCallError(
            f"{what} failed: {type(error).__name__}: {error}", error_type=type(error).__name__, error_message=str(error)
        ) from error
    value: T = outcome["value"]
    return value


def _cluster(cloud: str, cluster: str) -> Any:
    found = load().get_cloud(cloud).get_cluster(cluster)
    if found is None:
        raise ClusterNotFoundError(cloud, cluster)
    return found


def _sky_clusters(cloud: str, names: list[str]) -> dict[str, ClusterInfo]:
    """What SkyPilot's status says of these clusters (oumi's SkyCluster reads the same records)."""
    _before_oumi()
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
    _before_oumi()
    import sky

    sky.stream_and_get(sky.autostop(cluster, idle_minutes or 0, down=True))


def _job_config(config: str | Mapping[str, Any]) -> Any:
    """An oumi JobConfig from a job-config YAML path, or from the same settings as a dict."""
    import yaml

    _before_oumi()
    from oumi.core.configs import JobConfig

    if isinstance(config, str):
        return JobConfig.from_yaml(config)
    # Through a file, so a dict is read exactly as the YAML file would be
    # (from_yaml escapes ${...}, which oumi's from_str would interpolate).
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="oumi-jobs-") as handle:
        yaml.safe_dump(dict(config), handle, sort_keys=False)
        handle.flush()
        return JobConfig.from_yaml(handle.name)


def _config_classes() -> dict[str, type]:
    """The oumi config class of each task command that this oumi has."""
    _before_oumi()
    import oumi.core.configs as oumi_configs

    classes = {command: getattr(oumi_configs, name, None) for command, name in oumi_schema.CONFIG_CLASSES.items()}
    return {command: found for command, found in classes.items() if found is not None}


# A config with more problems than this is reported in part: each round loads it once more.
_MAX_PARSE_ROUNDS = 50
# finalize_and_validate looks a model up on the Hugging Face Hub (is it an adapter?), retrying for
# seconds where there is no network; a check reads the local cache only.  A process-wide setting of
# huggingface_hub, so changed under a lock and put back.
_offline_lock = threading.Lock()


def _config_class(kind: str) -> type:
    """The oumi config class a ``kind`` of config is read with (``job``, or a task command)."""
    _before_oumi()
    import oumi.core.configs as oumi_configs

    name = "JobConfig" if kind == "job" else oumi_schema.CONFIG_CLASSES.get(kind)
    found = getattr(oumi_configs, name, None) if name else None
    if found is None:
        raise ValueError(f"this oumi has no config class for {kind!r}")
    return found  # type: ignore[no-any-return]


def _load_settings(config_class: Any, settings: Mapping[str, Any]) -> Any:
    """``config_class`` loaded from ``settings`` the way ``oumi <command> -c FILE`` loads a file."""
    import yaml

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="oumi-jobs-check-") as handle:
        yaml.safe_dump(dict(settings), handle, sort_keys=False)
        handle.flush()
        return config_class.from_yaml(handle.name)


def _parse_problems(config_class: Any, settings: dict[str, Any]) -> tuple[list[ConfigProblem], Any]:
    """What oumi refuses while loading ``settings`` (all of it: each refused setting is taken out and the
    rest loaded again), and the loaded config where it finally loads (else None)."""
    from oumi.exceptions import OumiConfigParsingError

    problems: list[ConfigProblem] = []
    for _ in range(_MAX_PARSE_ROUNDS):
        try:
            return problems, _load_settings(config_class, settings)
        except OumiConfigParsingError as exc:
            cause = exc.__cause__
            message = str(getattr(cause, "msg", None) or exc).strip().splitlines()[0]
            where = oumi_schema.locate(settings, exc.config_key)
            problems.append(ConfigProblem(where or exc.config_key or "", message))
            if where is None or not oumi_schema.drop_path(settings, where):
                return problems, None  # e.g. a required setting that is missing: nothing to take out
        except Exception as exc:  # a check of oumi's own while loading (a __post_init__)
            message = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            where = oumi_schema.named_in(message, settings)
            problems.append(ConfigProblem(where or "", message))
            if where is None or not oumi_schema.drop_path(settings, where):
                return problems, None
    return problems, None


def _params_paths(node: Any, prefix: str, found: dict[int, str]) -> dict[int, str]:
    """id of each nested params object of a loaded config -> its dotted name (to say where validation failed)."""
    import dataclasses

    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        if prefix:
            found.setdefault(id(node), prefix)
        for field in dataclasses.fields(node):
            _params_paths(getattr(node, field.name, None), f"{prefix}.{field.name}" if prefix else field.name, found)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _params_paths(item, f"{prefix}[{index}]", found)
    return found


def _validation_problem(loaded: Any, settings: Mapping[str, Any]) -> ConfigProblem | None:
    """What ``finalize_and_validate`` refuses, named by the innermost settings object that raised it."""
    import huggingface_hub.constants as hub

    where = _params_paths(loaded, "", {})
    with _offline_lock:
        was, hub.HF_HUB_OFFLINE = hub.HF_HUB_OFFLINE, True
        try:
            loaded.finalize_and_validate()
            return None
        except Exception as exc:
            path = ""
            trace = exc.__traceback__
            while trace is not None:  # the innermost frame that ran a method of one of the config's settings
                path = where.get(id(trace.tb_frame.f_locals.get("self")), path)
                trace = trace.tb_next
            message = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            named = oumi_schema.named_in(message, settings)
            return ConfigProblem(named if named and named.startswith(path) else path, message)
        finally:
            hub.HF_HUB_OFFLINE = was


@functools.cache
def _settings_tree(kind: str) -> Tree | None:
    """The settings of ``kind``'s config class, walked once per process (a warm process checks many configs)."""
    return oumi_schema.build({kind: _config_class(kind)}).get(kind)


def _oumi_version() -> str:
    from importlib.metadata import version

    return version("oumi")


def check_settings(settings: Mapping[str, Any], kind: str) -> list[ConfigProblem]:
    """Every problem oumi's config class for ``kind`` finds in ``settings`` (see CloudAdapter.check_config)."""
    config_class = _config_class(kind)
    remaining = copy.deepcopy(dict(settings))
    problems = []
    tree = _settings_tree(kind)
    version = _oumi_version()
    for name in list(oumi_schema.unknown_settings(tree, remaining)) if tree else []:
        problems.append(ConfigProblem(name, oumi_schema.unknown_setting_problem(tree, name, version)))  # type: ignore[arg-type]
        oumi_schema.drop_path(remaining, name)
    parsed, loaded = _parse_problems(config_class, remaining)
    problems += parsed
    if loaded is not None:
        problem = _validation_problem(loaded, remaining)
        problems += [problem] if problem else []
    return problems


class OumiAdapter:
    """:class:`~oumi_jobs.cloud.adapter.CloudAdapter` over ``oumi.launcher`` in this process."""

    def prepare(self) -> None:
        load()

    def known_clouds(self, *, timeout_s: float) -> list[str]:
        return with_time_limit(lambda: list(load().which_clouds()), timeout_s, "oumi.launcher's clouds")

    def get_job(self, cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float) -> CloudJob | None:
        def ask() -> CloudJob | None:
            job_status = _cluster(cloud, cluster).get_job(launcher_job_id)
            return None if job_status is None else _from_job_status(cloud, cluster, job_status)

        return with_time_limit(ask, timeout_s, f"cloud {cloud!r}")

    def list_jobs(self, cloud: str, *, timeout_s: float) -> list[CloudJob]:
        def ask() -> list[CloudJob]:
            found = []
            for cluster in load().get_cloud(cloud).list_clusters():
                name = cluster.name()
                found += [_from_job_status(cloud, name, js) for js in cluster.get_jobs()]
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
            _before_oumi()
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
            return LaunchResult(name, _from_job_status(cloud, name, job_status))

        return with_time_limit(launch, timeout_s, "launcher.up")

    def cancel(self, cloud: str, cluster: str, launcher_job_id: str, *, timeout_s: float) -> CloudJob:
        def ask() -> CloudJob:
            return _from_job_status(cloud, cluster, load().cancel(launcher_job_id, cloud, cluster))

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
        return with_time_limit(lambda: oumi_schema.build(_config_classes()), timeout_s, "oumi's config classes")

    def check_config(self, settings: Mapping[str, Any], kind: str, *, timeout_s: float) -> list[ConfigProblem]:
        return with_time_limit(lambda: check_settings(settings, kind), timeout_s, "oumi's config check")

    def check_credentials(self, cloud: str, *, timeout_s: float) -> CredentialCheck:
        if not facts.is_sky_cloud(cloud):
            return CredentialCheck(cloud, None, f"oumi.launcher has no credentials check for {cloud}")
        return with_time_limit(lambda: _sky_credentials(cloud), timeout_s, f"SkyPilot's check of {cloud}")


# oumi's names of SkyPilot clouds that SkyPilot names otherwise.
_SKY_INFRA = {"k8s": "kubernetes", "sky-slurm": "slurm"}


def _sky_credentials(cloud: str) -> CredentialCheck:
    """SkyPilot's own check (``sky check CLOUD``) through its API server, only where one already answers:
    a pre-flight never starts one (the launch does that, and says so)."""
    _before_oumi()
    from sky.client import sdk
    from sky.server import common

    url = common.get_server_url()
    if common.get_api_server_status(url).status != common.ApiServerStatus.HEALTHY:
        return CredentialCheck(cloud, None, f"no SkyPilot API server answers at {url}")
    infra = _SKY_INFRA.get(cloud, cloud)
    workspaces = sdk.get(sdk.check((infra,), verbose=False))
    enabled = {name.lower() for clouds in (workspaces or {}).values() for name, abilities in clouds.items()
               if "compute" in [str(a).lower() for a in abilities]}  # fmt: skip
    if infra.lower() in enabled:
        return CredentialCheck(cloud, True, f"SkyPilot's check: {infra} is enabled")
    return CredentialCheck(
        cloud,
        False,
        f"credentials of {cloud} are not set up (SkyPilot's check: `sky check {infra}` says what is missing)",
    )
