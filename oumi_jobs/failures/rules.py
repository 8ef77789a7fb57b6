"""The failure rules: known log lines and launcher states, and the class each one means.

To add a rule, append a :class:`LogRule` (or a :class:`StatusRule`) here with
``examples``: lines as the failing programs really print them.
tests/test_failures.py checks that every example is classified by its own
rule and by no earlier one, so a new rule cannot silently shadow another.

Rules are tried in this order; the first that matches any line of the log
tail wins, and the last line it matched is the evidence.  Put the specific
rules (a GPU's memory) before the general ones (a process's memory).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Every class of the contract (SPEC "Failures and retries").  `stalled`, `over_time` and `over_budget` are also
# set by the guards, which know why they stopped a job; no log line says so.
CLASSES = (
    "config_error", "host_oom", "gpu_oom", "disk_full", "nccl", "preempted", "diverged", "stalled",
    "over_time", "over_budget", "killed", "exit_code", "lost", "unknown",
)  # fmt: skip


@dataclass(frozen=True)
class LogRule:
    name: str
    pattern: re.Pattern[str]
    failure_class: str
    cause: str
    hint: str
    examples: tuple[str, ...]  # real lines this rule must classify (tests/test_failures.py)


@dataclass(frozen=True)
class StatusRule:
    """A launcher's own final status word (Slurm's, SkyPilot's), as the first word of its status string."""

    words: tuple[str, ...]
    failure_class: str
    cause: str
    hint: str


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


LOG_RULES: tuple[LogRule, ...] = (
    LogRule(
        "cuda_oom",
        _rx(r"CUDA out of memory|OutOfMemoryError: CUDA|CUBLAS_STATUS_ALLOC_FAILED|HIP out of memory"),
        "gpu_oom",
        "a GPU ran out of memory",
        "lower the batch size or sequence length, or enable gradient checkpointing; or use a larger GPU",
        (
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
            "79.15 GiB of which 1.06 GiB is free.",
        ),
    ),
    LogRule(
        "nccl",
        _rx(
            r"Watchdog caught collective operation timeout|ProcessGroupNCCL.*(timeout|timed out|error)"
            r"|NCCL (error|timeout)|NCCL WARN .*(timeout|timed out)|nccl(System|Internal|Remote|Unhandled\w*)Error"
            r"|NCCL communicator was aborted"
        ),
        "nccl",
        "the GPUs' collective communication (NCCL) failed or timed out",
        "retry it: a node or link usually failed; if it repeats, check NCCL_DEBUG=INFO logs and the network",
        (
            "[rank1]:[E ProcessGroupNCCL.cpp:616] [Rank 1] Watchdog caught collective operation timeout: "
            "WorkNCCL(SeqNum=1, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600046 "
            "milliseconds before timing out.",
        ),
    ),
    LogRule(
        "no_space",
        _rx(r"No space left on device|\bENOSPC\b|Disk quota exceeded"),
        "disk_full",
        "a disk filled up",
        "free space where the job writes (its output_dir, checkpoints, caches) or point it at a larger disk",
        ("OSError: [Errno 28] No space left on device",),
    ),
    LogRule(
        "nan_loss",
        _rx(
            r"\bloss\b['\"]?\s*[:=]\s*['\"]?[-+]?(nan|inf)\b|loss (is|became) (nan|inf)"
            r"|non-finite loss|Detected (nan|inf) loss"
        ),
        "diverged",
        "the training loss became NaN or infinite",
        "lower the learning rate, add warmup or gradient clipping, or check the data; a retry repeats it",
        ("{'loss': nan, 'grad_norm': nan, 'learning_rate': 4e-05, 'epoch': 0.5}",),
    ),
    LogRule(
        "missing_dataset",
        _rx(
            r"DatasetNotFoundError|Couldn't find (a dataset|any data file)|Unable to find '.*'"
            r"|Dataset '.*' doesn't exist|dataset\w* .*(not found|does not exist)|Unrecognized dataset"
            r"|Dataset .* not found in the registry"
        ),
        "config_error",
        "a dataset the config names cannot be found",
        "check the dataset's name or path in the config (dataset_name, dataset_path), and the Hub access",
        (
            "datasets.exceptions.DatasetNotFoundError: Dataset 'no/such-dataset' doesn't exist on the Hub or cannot "
            "be accessed.",
            "Error: dataset_path '/data/train.jsonl' does not exist.",  # Oumi's own check
        ),
    ),
    LogRule(
        "missing_model",
        _rx(
            r"is not a local folder and is not a valid model identifier|does not appear to have a file named"
            r"|RepositoryNotFoundError|Unrecognized model in"
        ),
        "config_error",
        "a model the config names cannot be found",
        "check model.model_name in the config (a Hub id or a local folder), and the Hub access",
        (
            "OSError: no/such-model is not a local folder and is not a valid model identifier listed on "
            "'https://huggingface.co/models'",
        ),
    ),
    LogRule(
        "bad_config",
        _rx(
            r"omegaconf\.errors\.\w+|ConfigKeyError|ConfigAttributeError|Missing mandatory value"
            r"|ConfigTypeError|HFValidationError"
        ),
        "config_error",
        "the config is invalid",
        "fix the config: `oumi-jobs check CONFIG` names what is wrong",
        ("omegaconf.errors.ConfigKeyError: Key 'no_such_key' not in 'TrainingParams'",),
    ),
    LogRule(
        "host_memory",
        _rx(r"^\s*MemoryError\b|Cannot allocate memory|std::bad_alloc|\bOOM killer\b"),
        "host_oom",
        "the host ran out of memory",
        "lower the data loader's workers or batch size, or use a machine with more memory",
        ("OSError: [Errno 12] Cannot allocate memory",),
    ),
)

# Slurm's and SkyPilot's own final states.  `CANCELLED` is not here: a cancelled job is not a failed one.
STATUS_RULES: tuple[StatusRule, ...] = (
    StatusRule(
        ("PREEMPTED",),
        "preempted",
        "its machine was taken back (preempted)",
        "retry it, from its last checkpoint; spot capacity may need another region or zone",
    ),
    StatusRule(
        ("NODE_FAIL", "BOOT_FAIL"),
        "lost",
        "its node failed",
        "retry it; if the node keeps failing, tell the cluster's administrators",
    ),
    StatusRule(
        ("OUT_OF_MEMORY",),
        "host_oom",
        "the cluster's scheduler stopped it for exceeding its memory",
        "ask for more memory (Slurm --mem), or lower the batch size or data loader's workers",
    ),
    StatusRule(
        ("TIMEOUT", "DEADLINE"),
        "over_time",
        "it ran past its time limit",
        "ask for a longer time limit, or save checkpoints and resume from the last one",
    ),
    StatusRule(
        ("FAILED_SETUP", "FAILED_PRECHECKS"),
        "config_error",
        "its setup failed before it ran",
        "read its setup logs (`oumi-jobs logs JOB`) and fix the config's setup commands or resources",
    ),
)


def first_rule(line: str) -> LogRule | None:
    """The rule that classifies this one line (the first of the table that matches), or None."""
    return next((rule for rule in LOG_RULES if rule.pattern.search(line)), None)


def status_rule(status: str | None) -> StatusRule | None:
    """The rule of a launcher's final status string (by its first word, as ``oumi_states`` reads it), or None."""
    word = (status or "").strip().split(" ", 1)[0].rstrip("+").upper()
    return next((rule for rule in STATUS_RULES if word in rule.words), None)


# A line that reports an error, for the quote of a failure no rule knows.
ERROR_LINE = re.compile(
    r"\b\w*(Error|Exception|Interrupt)\b|\berror\b|\bfatal\b|\bpanic\b|\bfailed\b|\bSegmentation fault\b",
    re.IGNORECASE,
)
# Lines that say an error follows without saying which.
NOT_THE_ERROR = re.compile(r"^\s*(Traceback \(most recent call last\):|The above exception was the direct cause)")
