"""Input that is wrong gets exit 2, one line on stderr, and nothing written.

Numbers (every numeric option of every command), configs with values of the
wrong type, absurd nesting or NUL bytes, names too long for a file name, and
empty job ids; a submit that fails after registering leaves no record; and
cluster names are compared exactly, so queues whose names look alike never
share a slot.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from oumi_jobs import api
from oumi_jobs.local.launching import staged_config
from oumi_jobs.local.queues import slot_file
from oumi_jobs.store.registry import Registry

from .helpers import add_record, make_record, submit_id, wait_done, wait_until

HUGE = str(10**20)

# Every numeric option of every command, with values that are absurd: too big for
# SQLite or C, not finite, negative.  (The config is written by the test.)
ABSURD = [
    ("prune", "--older-than", "99999999w"),
    ("prune", "--older-than", "1" + "0" * 400 + "s"),
    ("prune", "--cloud-timeout", "nan"),
    ("list", "--since", "99999999w"),
    ("list", "--limit", HUGE),
    ("list", "--limit", "-1"),
    ("list", "--cloud-timeout", "inf"),
    ("list", "--cloud-timeout", "0"),
    ("cancellations", "--limit", HUGE),
    ("cancellations", "--offset", HUGE),
    ("cancellations", "--offset", "-1"),
    ("logs", "JOB", "--tail", HUGE),
    ("logs", "JOB", "--tail", "-1"),
    ("status", "JOB", "--cloud-timeout", "nan"),
    ("cancel", "JOB", "--timeout", "nan"),
    ("cancel", "JOB", "--timeout", "inf"),
    ("cancel", "JOB", "--timeout", "-1"),
    ("cancel", "JOB", "--timeout", "1e300"),
    ("cancel", "JOB", "--cloud-timeout", "-inf"),
    ("submit", "CONFIG", "--parallel", HUGE),
    ("submit", "CONFIG", "--parallel", "0"),
    ("submit", "CONFIG", "--nodes", HUGE, "--cloud", "gcp"),
    ("submit", "CONFIG", "--nodes", "0", "--cloud", "gcp"),
]


@pytest.mark.parametrize("args", ABSURD, ids=lambda args: " ".join(a[:12] for a in args))
def test_absurd_numbers_exit_2_with_one_line(paths, cli, job_config, args):
    job_id = add_record(paths, make_record())  # a job the command could name
    config = str(job_config("echo never"))
    argv = [config if a == "CONFIG" else job_id if a == "JOB" else a for a in args]
    with Registry.open(paths) as registry:
        before = [(r.job_id, r.end_time) for r in registry.jobs()]
    result = cli(*argv)
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "internal error" not in result.stderr and "constraint" not in result.stderr
    with Registry.open(paths) as registry:
        assert [(r.job_id, r.end_time) for r in registry.jobs()] == before  # nothing written


def test_the_library_refuses_absurd_numbers_too(paths):
    for call in (
        lambda: api.list_jobs(paths, limit=10**20),
        lambda: api.list_jobs(paths, cloud_timeout_s=float("nan")),
        lambda: api.list_jobs(paths, since="99999999w"),
        lambda: api.get_status(paths, "x", cloud_timeout_s=float("inf")),
    ):
        with pytest.raises(api.UsageError):
            call()


def test_sane_large_values_still_work(paths, cli, job_config):
    job_id = submit_id(cli, str(job_config("echo hello")))
    wait_done(cli, job_id)
    assert cli.json("list", "--since", "5000w", "--limit", str(2**63 - 1))[0]["job_id"] == job_id
    assert cli.json("cancellations", "--limit", str(2**63 - 1), "--offset", "0") == []
    assert cli.json("logs", job_id, "--tail", str(2**63 - 1))["text"] == "hello\n"
    assert cli.json("prune", "--older-than", "365000d", "--dry-run")["removed"] == []


# -- configs --------------------------------------------------------------------
BAD_CONFIGS = {
    "cloud-is-a-list": ("run: echo\nresources: {cloud: [x]}\n", "`resources.cloud` must be a cloud name"),
    "cloud-is-a-mapping": ("run: echo\nresources: {cloud: {a: 1}}\n", "`resources.cloud` must be a cloud name"),
    "resources-is-a-list": ("run: echo\nresources: [gcp]\n", "`resources:` must be a mapping"),
    "deep-for-yaml": ("run: echo\nx: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than"),
    "deep-for-us": ("run: echo\nx: " + "[" * 200 + "]" * 200 + "\n", "nested more than"),
    "nul-in-run": ('run: "echo a\\0b"\n', "`run:` contains a NUL byte"),
    "nul-in-setup": ('run: echo\nsetup: "echo \\0"\n', "`setup:` contains a NUL byte"),
    "nul-in-envs": ('run: echo\nenvs: {A: "x\\0y"}\n', "`envs.A` contains a NUL byte"),
    "env-name-with-equals": ('run: echo\nenvs: {"A=B": x}\n', "not a variable name"),
    "env-value-a-mapping": ("run: echo\nenvs: {A: {b: 1}}\n", "`envs.A` must be text or a number"),
    "working-dir-a-list": ("run: echo\nworking_dir: [a]\n", "`working_dir:` must be a path"),
    "impossible-date": ("run: echo\nwhen: 2001-02-30\n", "day is out of range"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_configs_of_the_wrong_shape_exit_2_and_write_nothing(paths, cli, tmp_path, case):
    text, message = BAD_CONFIGS[case]
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    result = cli("submit", str(config))
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not paths.registry_file.exists() and not paths.state_dir.exists()


def test_nul_bytes_from_the_library_are_usage_errors(paths, tmp_path):
    config = tmp_path / "ok.yaml"
    config.write_text("run: echo\n")
    for request in (
        api.SubmitRequest(config=str(config), env=("A=x\0y",)),
        api.SubmitRequest(config=str(config), workdir="a\0b"),
        api.SubmitRequest(config=str(tmp_path / "o\0k.yaml")),
    ):
        with pytest.raises(api.UsageError, match="NUL"):
            api.submit(paths, request)
    assert not paths.registry_file.exists()


# -- names ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (["--cluster", "q" * 256], "--cluster is longer than 255 bytes"),
        (["--cluster", "日本" * 43], "--cluster is longer than 255 bytes"),  # 258 bytes in UTF-8
        (["--cluster", " "], "--cluster must not be empty"),
        (["--cluster", "a\tb"], "control characters"),
        (["--name", "n" * 300], "--name is longer than 64 characters"),
    ],
)
def test_names_too_long_for_a_file_name_exit_2(paths, cli, job_config, args, message):
    result = cli("submit", str(job_config("echo never")), *args)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert not paths.registry_file.exists()


def test_the_longest_cluster_name_allowed_runs(cli, job_config):
    job_id = submit_id(cli, str(job_config("echo fits")), "--cluster", "é" * 127)  # 254 bytes
    assert wait_done(cli, job_id)["state"] == "succeeded"


# -- empty job ids ------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["cancel", ""],
        ["cancel", " "],
        ["cancel", "--force", ""],
        ["status", ""],
        ["status", "\t"],
        ["logs", ""],
        ["cancel-status", ""],
        ["cancellations", "--job", ""],
    ],
)
def test_an_empty_job_id_is_never_a_prefix(paths, cli, job_config, args):
    job_id = submit_id(cli, str(job_config("sleep 30")))  # the only job: "" would be a prefix of it
    result = cli(*args)
    assert result.exit_code == 2 and "an empty job id" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert cli.json("status", job_id)["state"] in ("pending", "running")
    assert cli.json("cancellations") == []


def test_an_empty_after_is_refused(paths, cli, job_config):
    submit_id(cli, str(job_config("true")))
    result = cli("submit", str(job_config("true")), "--after", "")
    assert result.exit_code == 2 and "empty job id" in result.stderr
    with Registry.open(paths) as registry:
        assert len(registry.jobs()) == 1


def test_the_library_resolves_no_empty_id(paths):
    add_record(paths, make_record())
    with Registry.open(paths) as registry:
        for ref in ("", "  "):
            with pytest.raises(api.UsageError):
                registry.resolve(ref)


# -- no half-made records --------------------------------------------------------------
def _helper_processes_cannot_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A fault that strikes after the record is written: a new interpreter (the supervisor, the launching
    process) cannot start with this PYTHONHOME, while the command itself, already running here, goes on."""
    monkeypatch.setenv("PYTHONHOME", str(tmp_path / "no-python-here"))


@pytest.mark.parametrize("cloud", [[], ["--cloud", "gcp"]], ids=["local", "cloud"])
def test_a_submit_that_cannot_start_its_process_leaves_no_record(paths, cli, job_config, cloud, monkeypatch, tmp_path):
    config = str(job_config("echo never"))
    _helper_processes_cannot_start(monkeypatch, tmp_path)
    result = cli("submit", "--name", "doomed", config, *cloud)
    assert result.exit_code == 1 and "cannot" in result.stderr, result.stderr
    assert "internal error" not in result.stderr
    monkeypatch.delenv("PYTHONHOME")
    with Registry.open(paths) as registry:
        assert registry.jobs() == []
    assert not paths.job_log_dir("doomed").exists()
    assert not staged_config(paths, "doomed").parent.exists()  # a cloud job's staged config went too
    # Once the fault is gone, the same name is free: nothing of the failed submit is left.
    assert submit_id(cli, "--name", "doomed", str(job_config("echo now"))) == "doomed"


def test_a_failed_submit_keeps_the_logs_of_an_earlier_job_of_that_name(paths, cli, job_config, monkeypatch, tmp_path):
    first = submit_id(cli, "--name", "again", str(job_config("echo first")))
    log = wait_done(cli, first)["stdout_path"]
    time.sleep(1.1)
    assert cli.json("prune", "--older-than", "1s")["removed"] == ["again"]  # logs are kept
    config = str(job_config("echo second"))
    _helper_processes_cannot_start(monkeypatch, tmp_path)
    assert cli("submit", "--name", "again", config).exit_code == 1
    monkeypatch.delenv("PYTHONHOME")
    with open(log) as handle:
        assert handle.read() == "first\n"


# -- queue identity --------------------------------------------------------------------
@pytest.mark.parametrize("first, second", [("q/1", "q-1"), ("日本", "中国"), ("GPU", "gpu"), ("a b", "a-b")])
def test_clusters_whose_names_look_alike_are_different_queues(paths, cli, job_config, first, second):
    assert slot_file(paths, first, 0) != slot_file(paths, second, 0)
    blocker = submit_id(cli, str(job_config("sleep 60")), "--cluster", first)
    wait_until(lambda: cli.json("status", blocker)["state"] == "running")
    other = submit_id(cli, str(job_config("echo free")), "--cluster", second)
    # If the two queues shared a slot, `other` would wait behind `blocker` for 60 s.
    assert wait_done(cli, other, timeout=20)["state"] == "succeeded"
    assert cli.json("status", blocker)["state"] == "running"
    same = submit_id(cli, str(job_config("echo behind")), "--cluster", first)
    time.sleep(0.5)
    assert cli.json("status", same)["state"] == "pending"  # the same name is the same queue


def test_slot_files_are_short_and_plain_names_keep_their_folder(paths):
    assert slot_file(paths, "local", 0).parent.name == "local"
    assert slot_file(paths, "gpu0", 2).name == "slot-2.lock"
    for name in ("x" * 255, "日本" * 42, "..", ".", "~abc", "a/../b"):
        folder = slot_file(paths, name, 0).parent
        assert folder.parent == paths.state_dir / "clusters"
        assert len(folder.name.encode()) <= 65 and folder.name not in (".", "..") and "/" not in folder.name
