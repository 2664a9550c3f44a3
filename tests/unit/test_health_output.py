"""`fleetctl health`'s outputs: the JSON report, the Prometheus textfile (read back with
prometheus_client's parser) and the command (table, exit codes, --history), over the
fakes of health_kit.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import typer
from health_kit import (
    CANARY,
    NOT_READY,
    FakeProbe,
    applied,
    edit,
    endpoint,
    no_facts,
    parse,
    replica,
    sample,
    unhealthy_report,
    write_inventory,
)
from typer.testing import CliRunner

from fleetctl.cli import health_cmd
from fleetctl.core.observed import ObservedFleet
from fleetctl.errors import ExitCode, FleetctlError
from fleetctl.ops.health import HealthReport, ProbeResult, probing
from fleetctl.ops.health import facts as facts_mod
from fleetctl.results import to_jsonable
from fleetctl.results.health import health_result


# -- JSON and textfile ---------------------------------------------------------------------
def test_json_shape(tmp_path: Path) -> None:
    data = to_jsonable(health_result(unhealthy_report(tmp_path)))
    json.dumps(data)
    assert set(data) == {
        "format_version",
        "swept_at",
        "timestamp",
        "duration_s",
        "timeout_s",
        "exit_code",
        "failures_needed",
        "memory",
        "summary",
        "hosts",
        "front_doors",
        "deployments",
        "heal",
    }
    assert data["swept_at"].endswith("+00:00") and data["exit_code"] == 10 and data["heal"] is None
    assert data["summary"] == {
        "replicas": 3,
        "healthy": 0,
        "degraded": 1,
        "unhealthy": 1,
        "stopped": 1,
        "missing": 0,
        "unknown": 0,
        "verdicts": {
            "ok": 0,
            "degraded": 1,
            "starting": 0,
            "failing": 0,
            "critical": 2,
            "unknown": 0,
        },
    }
    assert data["hosts"] == [
        {"host": "h1", "reachable": True, "error": None},
        {"host": "h2", "reachable": True, "error": None},
    ]
    chat, embed = data["deployments"]
    assert [chat[k] for k in ("deployment", "state", "desired", "healthy", "serving", "drift")] == [
        "chat@1",
        "degraded",
        2,
        0,
        1,
        False,
    ]
    assert [embed[k] for k in ("state", "drift", "drift_reasons")] == [
        "down",
        True,
        ["#0: drift: container is exited"],
    ]
    slow, r = chat["replicas"]
    assert set(r) == {
        "replica",
        "host",
        "verdict",
        "state",
        "reasons",
        "failures",
        "since",
        "endpoint",
        "container",
        "container_state",
        "restart_count",
        "restarts_since_last_sweep",
        "crash_loop",
        "started_at",
        "detail",
        "check",
        "probe_latency_ms",
        "latency",
        "profile",
        "triton",
        "drift",
    }
    assert [r[k] for k in ("verdict", "state", "detail", "check", "reasons")] == [
        "critical",
        "unhealthy",
        NOT_READY.detail,
        NOT_READY.check,
        [NOT_READY.detail],
    ]
    assert r["endpoint"].startswith("http://127.0.0.1:") and isinstance(
        r["probe_latency_ms"], float
    )
    assert slow["verdict"] == "degraded" and slow["latency"] == {
        "request": "POST /v1/chat/completions (1 token)",
        "ms": 300.0,
        "sla_ms": None,
        "over_sla": True,
    }
    assert [
        embed["replicas"][0][k] for k in ("probe_latency_ms", "container_state", "latency")
    ] == [None, "exited", None]


def test_textfile_round_trips_through_the_prometheus_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NGC_API_KEY", CANARY)
    report = unhealthy_report(tmp_path)
    out = tmp_path / "collector" / "fleetctl.prom"
    health_cmd.write_textfile(report, out)
    text = out.read_text()
    assert CANARY not in text
    assert [p.name for p in out.parent.iterdir()] == ["fleetctl.prom"]  # no temporary left behind
    m = parse(text)
    for key, healthy, up in (("chat@1#0", 0, 1), ("chat@1#1", 0, 0), ("embed@1#0", 0, 0)):
        r = replica(report, key)
        labels = {"deployment": r.deployment, "replica": str(r.replica), "host": r.host}
        assert sample(m, "fleetctl_replica_healthy", **labels) == healthy
        assert sample(m, "fleetctl_replica_up", **labels) == up
    embed0 = {"deployment": "embed@1", "replica": "0", "host": "h1"}
    chat0 = {"deployment": "chat@1", "replica": "0", "host": replica(report, "chat@1#0").host}
    assert sample(m, "fleetctl_replica_state", fleetctl_replica_state="stopped", **embed0) == 1
    assert sample(m, "fleetctl_replica_state", fleetctl_replica_state="healthy", **embed0) == 0
    assert sample(m, "fleetctl_replica_verdict", fleetctl_replica_verdict="critical", **embed0) == 1
    assert sample(m, "fleetctl_replica_verdict", fleetctl_replica_verdict="degraded", **chat0) == 1
    assert sample(m, "fleetctl_replica_consecutive_failures", **embed0) == 1
    assert sample(m, "fleetctl_probe_latency_seconds", **chat0) == pytest.approx(0.3)
    assert sample(m, "fleetctl_deployment_healthy_replicas", deployment="chat@1") == 0
    assert sample(m, "fleetctl_deployment_serving_replicas", deployment="chat@1") == 1
    assert sample(m, "fleetctl_deployment_desired_replicas", deployment="chat@1") == 2
    assert (
        sample(
            m,
            "fleetctl_deployment_state",
            deployment="chat@1",
            fleetctl_deployment_state="degraded",
        )
        == 1
    )
    assert sample(m, "fleetctl_deployment_drift", deployment="embed@1") == 1
    assert sample(m, "fleetctl_deployment_drift", deployment="chat@1") == 0
    assert sample(m, "fleetctl_host_reachable", host="h2") == 1
    assert sample(m, "fleetctl_front_door_healthy", host="h1") == 1
    assert sample(m, "fleetctl_probe_duration_seconds", deployment="chat@1", replica="1") >= 0
    assert (
        "fleetctl_probe_duration_seconds",
        (("deployment", "embed@1"), ("replica", "0")),
    ) not in m  # never probed
    assert sample(m, "fleetctl_health_sweep_timestamp_seconds") == pytest.approx(report.swept_at)
    assert sample(m, "fleetctl_health_sweep_duration_seconds") == pytest.approx(report.duration_s)
    assert sample(m, "fleetctl_health_exit_code") == 10


def test_textfile_write_failure_is_a_fleetctl_error(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(FleetctlError, match="cannot write textfile"):
        health_cmd.write_textfile(HealthReport(1.7e9, 0.1, 5.0, (), ()), tmp_path / "taken")


# -- the command ---------------------------------------------------------------------------
@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """The command on a fresh Typer app, over a faked observer, probe and Docker facts."""
    import fleetctl.adapters.observe as observe

    app = typer.Typer()
    health_cmd.register(app)

    @app.callback()
    def _root() -> None:  # keeps `health` a subcommand, as in the real app
        pass

    def invoke(observed: ObservedFleet, probe: FakeProbe, *args: str) -> Any:
        monkeypatch.setattr(observe, "observe_fleet", lambda inv: observed)
        monkeypatch.setattr(probing, "Prober", lambda: probe)
        monkeypatch.setattr(facts_mod, "DockerFacts", lambda inv: no_facts)
        return CliRunner().invoke(app, ["health", *args], env={"COLUMNS": "250"})

    return invoke


def test_cli_table_exit_0_then_critical_after_the_failures_it_takes(
    tmp_path: Path, cli: Callable[..., Any]
) -> None:
    path, state = write_inventory(tmp_path), str(tmp_path / "state.db")
    observed = applied(path)
    r = cli(observed, FakeProbe(), "-f", str(path), "--state", state)
    assert r.exit_code == 0, r.output
    assert "3/3 replicas ok" in r.output and "deployments: 2 ok" in r.output
    bad = ProbeResult(False, "model embed: not ready", "model embed is READY")
    r = cli(
        observed,
        FakeProbe({endpoint(observed, "embed@1#0"): bad}),
        "-f",
        str(path),
        "--state",
        state,
        "--failures",
        "2",
    )
    assert r.exit_code == ExitCode.DEGRADED, r.output
    assert (
        "model embed: not ready" in r.output
        and "2/3 replicas ok (1 failing)" in r.output
        and "failing 1/2" in r.output
    )
    r = cli(
        observed,
        FakeProbe({endpoint(observed, "embed@1#0"): bad}),
        "-f",
        str(path),
        "--state",
        state,
        "--failures",
        "2",
    )
    assert r.exit_code == ExitCode.UNHEALTHY and "(1 critical)" in r.output


def test_cli_json_only_and_textfile_even_when_unhealthy(
    tmp_path: Path, cli: Callable[..., Any]
) -> None:
    path = write_inventory(tmp_path)
    observed = edit(applied(path), "embed@1#0", lambda c: replace(c, state="exited"))
    prom = tmp_path / "fleetctl.prom"
    args = (
        "-f",
        str(path),
        "--output",
        "json",
        "--textfile",
        str(prom),
        "--timeout",
        "2",
        "--state",
        str(tmp_path / "s.db"),
        "--failures",
        "1",
    )
    r = cli(observed, FakeProbe(), *args)
    assert r.exit_code == ExitCode.UNHEALTHY
    data = json.loads(r.stdout)
    assert data["timeout_s"] == 2.0 and data["summary"]["stopped"] == 1 and data["memory"] is True
    assert (
        sample(
            parse(prom.read_text()), "fleetctl_deployment_healthy_replicas", deployment="embed@1"
        )
        == 0
    )


def test_cli_history_shows_verdict_changes_newest_first(
    tmp_path: Path, cli: Callable[..., Any]
) -> None:
    path, state = write_inventory(tmp_path), str(tmp_path / "state.db")
    good, down = (
        applied(path),
        edit(applied(path), "embed@1#0", lambda c: replace(c, state="exited")),
    )
    for observed in (good, down, down, good):
        cli(observed, FakeProbe(), "-f", str(path), "--state", state, "--failures", "2")
    r = cli(
        good,
        FakeProbe(),
        "-f",
        str(path),
        "--state",
        state,
        "--history",
        "embed",
        "--output",
        "json",
    )
    assert r.exit_code == 0, r.output
    events = json.loads(r.stdout)["events"]
    assert [(e["deployment"], e["verdict"]) for e in events] == [
        ("embed@1", v) for v in ("ok", "critical", "failing", "ok")
    ]
    r = cli(good, FakeProbe(), "-f", str(path), "--state", state, "--history", "chat@1")
    assert r.exit_code == 0 and "new -> ok" in r.output
    r = cli(good, FakeProbe(), "-f", str(path), "--state", state, "--history", "nothing")
    assert (
        isinstance(r.exception, FleetctlError) and r.exception.exit_code is ExitCode.NOT_FOUND
    )  # main() maps it to 12
