"""The Prometheus alerting rules (contrib/prometheus/oumi-jobs.rules.yml), checked by the real ``promtool``.

``promtool`` comes with Debian's ``prometheus`` package (``.ci/run`` installs
it); without it these tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from oumi_jobs.timestamps import now, to_iso

from .helpers import add_record, make_record, submit_id, wait_state

RULES = Path(__file__).resolve().parent.parent / "contrib" / "prometheus" / "oumi-jobs.rules.yml"
INSTALL = "apt-get install -y --no-install-recommends prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"promtool is not installed; {INSTALL} brings it")
        pytest.skip(f"promtool is not installed: {INSTALL}")
    return found


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=60, check=False)


def test_the_rules_pass_promtool_check(promtool):
    result = _run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_every_metric_the_rules_use_is_one_oumi_jobs_writes(promtool, paths, cli, job_config, tmp_path):
    """A real forced cancel and a lost job: the metrics file names every series the rules read, and lints clean."""
    add_record(paths, make_record("lost-one", submit_time=to_iso(now() - timedelta(hours=2))))
    job_id = submit_id(cli, str(job_config("sleep 300")))
    wait_state(cli, job_id, "running")
    metrics_file = tmp_path / "textfile" / "oumi-jobs.prom"
    assert cli("cancel", job_id, "--force", "--metrics-file", str(metrics_file)).exit_code == 0
    text = metrics_file.read_text()

    lint = _run(promtool, "check", "metrics", stdin=text)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    used = set(re.findall(r"\boumi_jobs_[a-z_]+", RULES.read_text()))
    written = set(re.findall(r"^(oumi_jobs_[a-z_]+)", text, re.MULTILINE))
    assert used and used <= written, used - written
    assert 'oumi_jobs_cancellation_sigkills_total{cloud="local",mode="force"} 1.0' in text
    assert 'oumi_jobs_cancellation_survivors_total{cloud="local",mode="force"} 0.0' in text
    assert 'oumi_jobs_oldest_unresolved_job_submit_timestamp_seconds{state="lost"}' in text


def test_the_alerts_fire_on_the_series_they_watch(promtool, tmp_path):
    """``promtool test rules``: each alert fires on its series, and stays quiet when they do not change."""
    # Without annotations: promtool would compare their text too, and these tests are about when alerts fire.
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    labels = 'cloud="local",mode="force",instance="gpu0"'
    (tmp_path / "test.yml").write_text(
        textwrap.dedent(
            f"""
            rule_files: [rules.yml]
            evaluation_interval: 1m
            tests:
              - interval: 1m
                input_series:
                  - series: 'oumi_jobs_cancellation_failures_total{{{labels}}}'
                    values: '0 0 1 1 1'
                  - series: 'oumi_jobs_cancellation_survivors_total{{{labels}}}'
                    values: '0 0 0 0 0'
                  - series: 'oumi_jobs_cancellation_sigkills_total{{{labels}}}'
                    values: '0 1 1 1 1'
                  - series: 'oumi_jobs_cancellation_cleanup_failures_total{{{labels}}}'
                    values: '0 0 0 0 0'
                  - series: 'oumi_jobs_oldest_unresolved_job_submit_timestamp_seconds{{state="lost",instance="gpu0"}}'
                    values: '-7200+0x60'
                alert_rule_test:
                  - eval_time: 4m
                    alertname: OumiJobsCancellationFailed
                    exp_alerts:
                      - exp_labels: {{severity: warning, cloud: local, mode: force, instance: gpu0}}
                  - eval_time: 4m
                    alertname: OumiJobsCancellationLeftSurvivors
                    exp_alerts: []
                  - eval_time: 4m
                    alertname: OumiJobsForceKillUsed
                    exp_alerts:
                      - exp_labels: {{severity: info, cloud: local, mode: force, instance: gpu0}}
                  - eval_time: 4m
                    alertname: OumiJobsCancellationCleanupFailed
                    exp_alerts: []
                  - eval_time: 10m
                    alertname: OumiJobsJobLost
                    exp_alerts: []
                  - eval_time: 40m
                    alertname: OumiJobsJobLost
                    exp_alerts:
                      - exp_labels: {{severity: warning, state: lost, instance: gpu0}}
            """
        )
    )
    result = _run(promtool, "test", "rules", str(tmp_path / "test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
