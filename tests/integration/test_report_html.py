"""The HTML report in a real browser: headless Chromium renders it and dumps its DOM."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fleetctl.cli import decide_cmds

REPO = Path(__file__).resolve().parents[2]
SEED = REPO / "inventory" / "fleet.yaml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.integration


def _apt_install(package: str) -> str | None:
    """Install a Debian package; None on success, else why it failed."""
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine"
    if os.geteuid() != 0:
        return "installing needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", package]
    if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode == 0:
        return None
    # A stale or missing package list is the usual cause: refresh once and retry.
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
    proc = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    return (
        None
        if proc.returncode == 0
        else (proc.stderr.strip().splitlines() or ["apt-get failed"])[-1]
    )


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if path is None:
        why = _apt_install("chromium")
        path = shutil.which("chromium")
        if path is None:
            pytest.skip(f"headless Chromium unavailable: apt-get install chromium failed ({why})")
    return path


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture()
def html_report(tmp_path: Path) -> Path:
    app = typer.Typer(pretty_exceptions_enable=False)
    decide_cmds.register(app)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "-f", str(SEED), "--html", str(out)])
    assert result.exit_code == 0, (result.output, result.exception)
    return out


def test_report_html_renders_in_chromium(chromium: str, html_report: Path, tmp_path: Path) -> None:
    url = html_report.resolve().as_uri()
    shot = tmp_path / "report.png"
    proc = _chromium(
        chromium, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,900", url
    )
    assert shot.exists(), proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(PNG_MAGIC)
    # A blank 1280x900 page compresses to a few KB; bars, text and colour take far more.
    assert len(data) > 40_000, f"screenshot is only {len(data)} bytes"

    dom = _chromium(chromium, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    bars = re.findall(r'<svg[^>]*class="gpu-bar"[^>]*data-gpu="([^"]+)"', dom.stdout)
    assert sorted(bars) == ["gpu-host-1/0", "gpu-host-1/1", "gpu-host-1/2", "gpu-host-1/3"]
    segments = re.findall(r'class="seg" data-deployment="([^"]+)"', dom.stdout)
    assert sorted(segments) == sorted(
        ["chat-llm@v4", "chat-llm@v3", "embeddings@1", "reranker@1", "safety-guard@1"]
    )
    assert "80 / 80 GB" in dom.stdout
    assert 'id="sla"' in dom.stdout and 'id="costs"' in dom.stdout
