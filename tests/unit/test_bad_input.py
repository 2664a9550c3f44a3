"""Every mistake a person can make in an inventory ends in `FILE:LINE:COL: path: message`,
exit 3, no traceback, within 2 s: broken files, hostile YAML, values that cannot work.

Each case is run through the real CLI (`fleetctl validate`) in a subprocess, so the exit
code and the absence of a traceback are those a person sees; a hang fails the test (30 s
timeout). The 2 s figure is measured by tests/benchmarks/bench_bad_input.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bad_inputs import CASES, HOST, model

from fleetctl.core.loader import MAX_INVENTORY_BYTES
from fleetctl.errors import ExitCode, InventoryError
from fleetctl.runtimes.inventory import load, load_text

LINE = re.compile(
    r"^error: (?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<path>\S+): (?P<message>.+)$"
)


def fleetctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "fleetctl", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "300", **(env or {})},
        stdin=subprocess.DEVNULL,
    )
    return r


def assert_one_line_errors(
    r: subprocess.CompletedProcess[str], file: Path, expect: str
) -> list[re.Match[str]]:
    assert r.returncode == ExitCode.INVENTORY, r.stdout + r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    matches = [LINE.match(line) for line in lines]
    assert lines and all(matches), r.stderr
    assert all(m["file"] == str(file) for m in matches if m), r.stderr
    assert expect in r.stderr, r.stderr
    return [m for m in matches if m]


@pytest.fixture(scope="module")
def case_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad-input")
    out = {}
    for i, (name, (content, _)) in enumerate(CASES.items()):
        path = d / f"case{i}.yaml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        out[name] = path
    return out


def test_every_malformed_case_is_one_line_each_exit_3_within_2_s(
    case_files: dict[str, Path],
) -> None:
    """One `fleetctl validate --output json` per case (the count is in docs/reliability.md)."""
    for name, path in case_files.items():
        r = fleetctl("validate", "--output", "json", "-f", str(path))
        assert_one_line_errors(r, path, CASES[name][1])
        doc = json.loads(r.stdout)
        assert doc["valid"] is False and doc["problems"], name
        assert all(
            p["file"] == str(path) and p["line"] >= 1 and p["col"] >= 1 for p in doc["problems"]
        ), name


def test_file_level_mistakes(tmp_path: Path) -> None:
    cases = {
        "missing": (tmp_path / "nope.yaml", "no such inventory file"),
        "directory": (tmp_path, "is a directory"),
        "under a file": (tmp_path / "f.yaml" / "x.yaml", "Not a directory"),
    }
    (tmp_path / "f.yaml").write_text(HOST)
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # opened without blocking: no writer is waited for
    cases["fifo"] = (fifo, "not a regular file")
    for name, (path, expect) in cases.items():
        r = fleetctl("validate", "-f", str(path))
        (m,) = assert_one_line_errors(r, path, expect)
        assert m["path"] == "<file>", name


def test_a_huge_file_is_refused_by_its_size_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as f:  # sparse: no need to write the bytes
        f.truncate(MAX_INVENTORY_BYTES + 1)
    r = fleetctl("validate", "-f", str(path))
    assert_one_line_errors(r, path, "an inventory may be at most 16 MiB")
    with pytest.raises(InventoryError, match="at most 16 MiB"):
        load_text("#" * (MAX_INVENTORY_BYTES + 1), "big.yaml")


@pytest.mark.skipif(
    shutil.which("setpriv") is None or os.geteuid() != 0,
    reason="needs root and setpriv to read as another user",
)
def test_an_unreadable_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text(HOST)
    path.chmod(0o600)
    tmp_path.chmod(0o755)
    # As root every file is readable: read it as nobody, who may not.
    r = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            "from fleetctl.runtimes.inventory import load; load(%r)" % str(path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "Permission denied" in r.stderr and "<file>: cannot read" in r.stderr, r.stderr
    assert f"{path}:1:1: <file>: cannot read: Permission denied" in r.stderr


def test_a_typo_leads_and_the_key_it_stands_for_is_not_also_missing() -> None:
    text = (
        HOST
        + "models:\n  - {name: m, version: '1', runtime: nim, image: i, gpu_memmory_gb: 4, replicas: 'x'}\n"
    )
    with pytest.raises(InventoryError) as exc:
        load_text(text, "f.yaml")
    first, *rest = exc.value.problems
    assert first.endswith("models[0].gpu_memmory_gb: unknown key (did you mean gpu_memory_gb?)")
    assert not any("gpu_memory_gb: Field required" in p for p in rest)
    assert any("models[0].replicas" in p for p in rest)


def test_nothing_far_from_a_key_is_suggested() -> None:
    with pytest.raises(InventoryError) as exc:
        load_text(HOST + "    colour: blue\n", "f.yaml")
    assert exc.value.problems == ["f.yaml:5:5: hosts[0].colour: unknown key"]


def test_numbers_and_booleans_as_keys_are_taken_as_written() -> None:
    loaded = load_text(HOST + "    labels: {1: a, on: b}\n", "f.yaml")
    assert loaded.inventory.hosts[0].labels == {"1": "a", "on": "b"}


def test_a_date_like_version_is_text() -> None:
    loaded = load_text(
        HOST
        + "models:\n  - {name: m, version: 2024-06-01, runtime: nim, image: i, gpu_memory_gb: 4}\n"
    )
    assert loaded.inventory.models[0].version == "2024-06-01"


def test_a_few_aliases_still_work() -> None:
    text = "hosts:\n  - {name: a, docker: 'unix:///a.sock', simulated: true, gpus: &g {count: 2, memory_gb: 80}}\n"
    text += (
        "  - {name: b, docker: 'unix:///b.sock', ports: 30000-30999, simulated: true, gpus: *g}\n"
    )
    loaded = load_text(text)
    assert [h.gpus.count for h in loaded.inventory.hosts] == [2, 2]  # type: ignore[union-attr]


def test_the_seed_and_demo_inventories_stay_valid() -> None:
    repo = Path(__file__).resolve().parents[2]
    for name in ("fleet.yaml", "demo.yaml"):
        load(repo / "inventory" / name)


def test_validate_json_on_a_valid_inventory(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(textwrap.dedent(model()))
    r = fleetctl("validate", "--output", "json", "-f", str(path))
    assert r.returncode == 0 and json.loads(r.stdout)["valid"] is True
