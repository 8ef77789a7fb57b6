"""Small helpers several test files share (fixtures stay in conftest.py).

Test files import these from here, never from each other or from conftest.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from oumi_jobs.cli.app import app
from oumi_jobs.errors import RegistryError
from oumi_jobs.local import containment
from oumi_jobs.local.procs import is_alive
from oumi_jobs.paths import Paths
from oumi_jobs.polling import poll_until
from oumi_jobs.store.cancellations import CancellationRecord, CancellationStatus
from oumi_jobs.store.notifications import NotificationRecord
from oumi_jobs.store.registry import JobRecord, Registry
from oumi_jobs.timestamps import now_iso


class Cli:
    """The command line in this process, stdout and stderr apart (the ``cli`` fixture)."""

    def __init__(self) -> None:
        self.runner = CliRunner(mix_stderr=False)

    def __call__(self, *args: str, input: str | None = None):
        return self.runner.invoke(app, list(args), input=input, catch_exceptions=False)

    def json(self, *args: str):
        result = self(*args, "--json")
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
        return json.loads(result.stdout)


def submit_id(cli: Cli, *args: str) -> str:
    """``submit -q ARGS``, which must succeed; the new job's id."""
    result = cli("submit", "-q", *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def make_record(job_id: str | None = None, **fields: Any) -> JobRecord:
    """A registry record of a local job submitted now; ``fields`` override or add to it."""
    values: dict[str, Any] = {"cloud": "local", "submit_time": now_iso(), "command": "job"} | fields
    return JobRecord(job_id=job_id or f"job-test-{time.monotonic_ns()}", **values)


def make_cancellation(**fields: Any) -> CancellationRecord:
    """A finished cancellation record of a local job (nothing stored); ``fields`` override it."""
    values: dict[str, Any] = {
        "cancellation_id": "cx-20260101-000000-abcdef", "job_id": "job-test", "cloud": "local",
        "requested_at": "2026-01-01T00:00:00+00:00", "reason": None, "force": False, "timeout_s": 30.0,
        "signal": "SIGTERM", "status": CancellationStatus.COMPLETED, "finished_at": "2026-01-01T00:00:01+00:00",
        "final_state": "cancelled", "caused_by": None, "survivors": (), "runners_signalled": 1, "detail": None,
        "steps": (),
    }  # fmt: skip
    return CancellationRecord(**(values | fields))


def add_record(paths: Paths, record: JobRecord) -> str:
    """Write ``record`` straight into the registry (no supervisor is started); its job id."""
    with Registry.open(paths) as registry:
        registry.add(record)
    return record.job_id


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.05) -> object:
    value = poll_until(timeout, predicate, interval)
    if not value:
        raise AssertionError(f"condition not met within {timeout} s")
    return value


def wait_done(cli: Cli, job_id: str, timeout: float = 20.0) -> dict:
    def done():
        doc = cli.json("status", job_id)
        return doc if doc["done"] else None

    return wait_until(done, timeout)  # type: ignore[return-value]


def wait_state(cli: Cli, job_id: str, state: str, timeout: float = 20.0) -> dict:
    def reached():
        doc = cli.json("status", job_id)
        return doc if doc["state"] == state else None

    return wait_until(reached, timeout)  # type: ignore[return-value]


def free_loopback_port() -> int:
    """A loopback TCP port nobody listens on (free the moment it is returned)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def on_a_terminal(argv: list[str], env: dict[str, str], cwd: Path) -> bytes:
    """Run ``argv`` with stdout and stderr on a new pseudo-terminal; everything it wrote there."""
    master, slave = os.openpty()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, cwd=cwd)
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        process.wait(timeout=60)
    return b"".join(chunks)


# Every process the tests start carries this (conftest.py sets it), so what they start can be told apart.
TEST_RUN_MARK = "OUMI_JOBS_TEST_RUN"
# Set on the SkyPilot API server tests/test_skypilot.py starts on purpose (and ends itself).
INTENDED_SKY_SERVER = "OUMI_JOBS_TEST_SKY_SERVER"


def left_sky_servers() -> list[tuple[int, dict[bytes, bytes]]]:
    """SkyPilot API servers this test run started and did not mean to: (pid, environment) of each."""
    mark = os.environ[TEST_RUN_MARK].encode()
    found: list[tuple[int, dict[bytes, bytes]]] = []
    if not Path("/proc").is_dir():  # no procfs to read (macOS): nothing is checked
        return found
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if b"sky.server.server" not in Path(entry.path, "cmdline").read_bytes():
                continue
            raw = Path(entry.path, "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        env = dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
        if env.get(TEST_RUN_MARK.encode()) == mark and INTENDED_SKY_SERVER.encode() not in env:
            found.append((int(entry.name), env))
    return found


def slurm_unready(cluster: str) -> str | None:
    """Why the loopback Slurm cluster cannot be used (None: it can): sbatch, sinfo, and ssh to ``cluster``."""
    if not shutil.which("sbatch"):
        return "Slurm is not installed"
    probes = (["sinfo", "-h"], ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", cluster, "true"])
    for probe in probes:
        try:
            if subprocess.run(probe, capture_output=True, timeout=20).returncode != 0:
                return f"`{' '.join(probe)}` failed"
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`{' '.join(probe)}`: {exc}"
    return None


# The tiny model of real `oumi train` tests (the session's `tiny` fixture builds it), made on the spot with no
# download: a random Llama of two layers, hidden size 32, saved with ``save_pretrained``, a word-level tokenizer
# with a chat template, and a ``text_sft_jsonl`` dataset.  Run in a child interpreter: the test process need
# not import torch and transformers.
TINY_BUILD = textwrap.dedent(
    """
    import json, random, sys
    from pathlib import Path
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    root = Path(sys.argv[1])
    words = "the a cat dog sat on mat ran fast slow big small red blue green tree".split()
    specials = ["<pad>", "<unk>", "<s>", "</s>", "user", "assistant", "system"]
    vocab = {w: i for i, w in enumerate(specials + words)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>",
        model_max_length=128,
    )
    fast.chat_template = "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} </s> {% endfor %}"
    fast.save_pretrained(root / "tiny")
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0, bos_token_id=2, eos_token_id=3,
    )
    LlamaForCausalLM(config).save_pretrained(root / "tiny")
    random.seed(0)
    with open(root / "data.jsonl", "w") as handle:
        for _ in range(64):
            ask, answer = (" ".join(random.choice(words) for _ in range(6)) for _ in range(2))
            messages = [{"role": "user", "content": ask}, {"role": "assistant", "content": answer}]
            handle.write(json.dumps({"messages": messages}) + "\\n")
    """
)


def train_config(
    root: Path, here: Path, max_steps: int = 12, name: str = "train.yaml", *, extra: str = "", **training: Any
) -> Path:
    """An `oumi train` config of the tiny model in ``root`` writing to ``here/out``; ``training`` adds or
    replaces settings of its ``training`` section (``learning_rate=1e30``, ``save_steps=5``), ``extra`` adds
    lines of YAML to it."""
    settings = {
        "trainer_type": "TRL_SFT", "max_steps": max_steps, "per_device_train_batch_size": 4, "logging_steps": 1,
        "save_steps": 0, "save_final_model": False, "output_dir": str(here / "out"), "enable_wandb": False,
        "enable_tensorboard": False, "enable_mlflow": False, "dataloader_num_workers": 0,
    } | training  # fmt: skip
    config = here / name
    config.write_text(
        textwrap.dedent(
            f"""
            model:
              model_name: {root / "tiny"}
              tokenizer_name: {root / "tiny"}
              model_max_length: 128
              torch_dtype_str: float32
            data:
              train:
                datasets:
                  - dataset_name: text_sft_jsonl
                    dataset_path: {root / "data.jsonl"}
            """
        )
        + "training:\n"
        + "".join(f"  {key}: {_yaml_scalar(value)}\n" for key, value in settings.items())
        + textwrap.indent(textwrap.dedent(extra), "  ")
    )
    return config


def hermetic(root: Path) -> list[str]:
    """``--env`` options: offline, no telemetry, the Hugging Face caches in the test's own folder."""
    settings = [f"HF_HOME={root / 'hf'}", "HF_HUB_OFFLINE=1", "DO_NOT_TRACK=1", "TOKENIZERS_PARALLELISM=false"]
    return [f"--env={setting}" for setting in settings]


def _yaml_scalar(value: Any) -> str:
    """A float with its dot (YAML 1.1 reads ``1e+30`` as a string), anything else as JSON (a YAML subset)."""
    return f"{value:.6e}" if isinstance(value, float) else json.dumps(value)


def make_notification(**changes: Any) -> NotificationRecord:
    """A delivery record as the store reads one back (its URL's password redacted in ``shown_url``)."""
    fields: dict[str, Any] = dict(
        notification_id=1, job_id="job-1", attempt=1, event="succeeded", url="https://bob:pw@example.org/hook",
        shown_url="https://bob:****@example.org/hook", status="sent", attempts=1, last_error=None,
        sent_at="2026-01-01T10:00:01.000+00:00", created_at="2026-01-01T10:00:00.000+00:00",
        next_try_at="2026-01-01T10:00:00.000+00:00", document={},
    )  # fmt: skip
    fields.update(changes)
    return NotificationRecord(**fields)


def end_servers_of(paths: Paths) -> list[int]:
    """SIGKILL the oumi-jobs servers of this home (a test's commands started them); their pids."""
    ended = []
    for info in (paths.state_dir / "server").glob("*/server.json"):
        try:
            record = json.loads(info.read_text())
        except (OSError, ValueError):
            continue
        pid, start_time, boot = record.get("pid"), record.get("start_time"), record.get("boot_id")
        if is_alive(pid, start_time, boot):
            os.kill(pid, signal.SIGKILL)
            poll_until(10, lambda pid=pid, start_time=start_time, boot=boot: not is_alive(pid, start_time, boot), 0.05)
            ended.append(pid)
    return ended


def end_jobs_of(paths: Paths) -> None:
    """SIGKILL what is left of the jobs (and supervisors) registered under ``paths``."""
    if not paths.registry_file.exists():
        return
    try:
        with Registry.open(paths) as registry:
            records = registry.jobs()
    except RegistryError:
        return  # a test that broke the registry on purpose started no job
    for record in records:
        if is_alive(record.pid, record.process_start_time, record.boot_id) and record.pgid:
            try:
                os.killpg(record.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if is_alive(record.supervisor_pid, record.supervisor_start_time, record.boot_id):
            try:
                os.kill(record.supervisor_pid, signal.SIGKILL)  # type: ignore[arg-type]
            except ProcessLookupError:
                pass
    _end_cgroups_of(records)


def _end_cgroups_of(records: list[JobRecord]) -> None:
    """Kill every process in the jobs' cgroups and remove them: a killed supervisor leaves its job's behind,
    also one it made but had not recorded yet (supervisors make theirs under this process's cgroup)."""
    own = containment.own_cgroup()
    for record in records:
        cgroup = Path(record.cgroup) if record.cgroup else own / f"oumi-jobs-{record.job_id}" if own else None
        if cgroup is None or not cgroup.exists():
            continue
        containment.kill(cgroup)
        poll_until(10, lambda: not containment.pids_in(cgroup), 0.02)  # noqa: B023 (called at once)
        containment.remove(cgroup)
