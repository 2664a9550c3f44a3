"""The plugin registry: what a broken, duplicate or outdated plugin does to fleetctl.

Each plugin here is a real distribution written to a temporary folder (a module and a
`.dist-info` with its entry points), found through importlib.metadata as an installed
one is; the command-line tests put it on the interpreter's path.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import textwrap
from itertools import count
from pathlib import Path

import pytest

from fleetctl.errors import ExitCode, InventoryError, PluginError
from fleetctl.runtimes.inventory import load_text
from fleetctl.runtimes.registry import load_plugins, run_plugin_check
from fleetctl.runtimes.spec import CheckResult, HealthCheck

REPO = Path(__file__).resolve().parents[2]
_unique = count()

RUNTIME = """
from pydantic import BaseModel, ConfigDict
from fleetctl.runtimes.hookspecs import hookimpl
from fleetctl.runtimes.spec import CheckKind, CheckResult

FLEETCTL_API_VERSION = {api!r}


class EchoOptions(BaseModel):
    model_config = ConfigDict(extra={extra!r})
    greeting: str = "hi"
    times: int = 1


class Echo:
    name = {runtime!r}
    config = EchoOptions

    def render(self, ctx):
        raise NotImplementedError


@hookimpl
def register_runtimes(register):
    register(Echo())


def answers(endpoint, check, settings, timeout_s):
    return CheckResult(settings.want == check.target, f"asked {{check.target}}")


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    want: str


@hookimpl
def register_health_checks(register):
    register(CheckKind({kind!r}, answers, Settings))
"""


def distribution(
    root: Path,
    dist: str,
    source: str = "",
    *,
    runtime: str = "echo",
    api: str | None = "1.0",
    extra: str = "forbid",
    kind: str = "echo_check",
) -> str:
    """Write a distribution named `dist` under `root`; its plugin module's name."""
    module = f"plugin_{dist.replace('-', '_')}_{next(_unique)}"
    text = source or RUNTIME.format(api=api, runtime=runtime, extra=extra, kind=kind)
    if api is None:
        text = text.replace("FLEETCTL_API_VERSION = None\n", "")
    (root / f"{module}.py").write_text(textwrap.dedent(text))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[fleetctl]\n{runtime} = {module}\n")
    return module


def entry_points(root: Path) -> list[md.EntryPoint]:
    return [
        ep
        for d in md.distributions(path=[str(root)])
        for ep in d.entry_points
        if ep.group == "fleetctl"
    ]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


INVENTORY = """\
hosts:
  - {{name: h, simulated: true, gpus: {{count: 1, memory_gb: 80}}}}
models:
  - name: a
    version: '1'
    runtime: {runtime}
    image: i
    gpu_memory_gb: 8
{extra}"""


def inventory(runtime: str, extra: str = "") -> str:
    return INVENTORY.format(runtime=runtime, extra=extra)


def test_a_plugin_registering_a_built_in_runtime_name_is_refused_naming_both(site: Path) -> None:
    distribution(site, "fleetctl-shadow", runtime="nim")
    with pytest.raises(PluginError) as err:
        load_plugins(entry_points(site))
    message = str(err.value)
    assert "\n" not in message
    assert "fleetctl-shadow" in message and "'nim'" in message and "which fleetctl" in message
    assert err.value.exit_code is ExitCode.PLUGIN == 15


def test_two_plugins_with_one_runtime_name_are_refused_naming_both(site: Path) -> None:
    distribution(site, "fleetctl-echo-one")
    distribution(site, "fleetctl-echo-two", kind="other_check")
    with pytest.raises(PluginError) as err:
        load_plugins(entry_points(site))
    assert {"fleetctl-echo-one", "fleetctl-echo-two"} <= set(
        str(err.value).replace(",", "").split()
    )


def test_a_plugin_that_fails_to_import_is_left_out_with_one_line_naming_it(site: Path) -> None:
    distribution(site, "fleetctl-broken", "import no_such_module_anywhere\n")
    found = load_plugins(entry_points(site))
    assert set(found.runtimes) == {"nim", "triton"}
    (line,) = found.broken
    assert line.startswith("plugin fleetctl-broken (entry point 'echo') failed to import:")
    assert "ModuleNotFoundError" in line and "no_such_module_anywhere" in line

    catalog = found.catalog()
    # An inventory that does not use it loads; one naming a runtime nobody provides
    # is refused with the plugin's line.
    assert load_text(inventory("nim"), "f.yaml", known_runtimes=catalog).inventory.models
    with pytest.raises(PluginError) as err:
        load_text(inventory("echo"), "f.yaml", known_runtimes=catalog)
    assert str(err.value) == line


@pytest.mark.parametrize(
    ("api", "expected"),
    [
        (None, "declares no FLEETCTL_API_VERSION (this fleetctl's hook API is 1.0)"),
        ("2.0", "is built for fleetctl hook API 2.0, this fleetctl speaks 1.0"),
        ("one", "declares FLEETCTL_API_VERSION 'one': give MAJOR.MINOR"),
    ],
)
def test_a_plugin_for_another_hook_api_is_refused(
    site: Path, api: str | None, expected: str
) -> None:
    distribution(site, "fleetctl-old", api=api)
    found = load_plugins(entry_points(site))
    assert "echo" not in found.runtimes
    (line,) = found.broken
    assert line.startswith("plugin fleetctl-old ") and expected in line


def test_a_newer_minor_version_of_the_hook_api_is_accepted(site: Path) -> None:
    distribution(site, "fleetctl-newer", api="1.7")
    found = load_plugins(entry_points(site))
    assert found.sources["echo"] == "fleetctl-newer" and not found.broken


def test_a_runtime_config_that_accepts_unknown_keys_is_refused(site: Path) -> None:
    distribution(site, "fleetctl-lax", extra="allow")
    with pytest.raises(PluginError, match=r"fleetctl-lax: .* must refuse unknown keys"):
        load_plugins(entry_points(site))


def test_a_plugin_health_check_kind_cannot_take_a_built_in_name(site: Path) -> None:
    distribution(site, "fleetctl-http", kind="http")
    with pytest.raises(PluginError, match="kind 'http', which fleetctl already provides"):
        load_plugins(entry_points(site))


def test_a_plugin_runtime_validates_its_options_with_its_model(site: Path) -> None:
    distribution(site, "fleetctl-echo")
    catalog = load_plugins(entry_points(site)).catalog()
    good = load_text(
        inventory("echo", "    options: {greeting: hello}\n"), "f.yaml", known_runtimes=catalog
    )
    assert good.inventory.models[0].options.greeting == "hello"
    assert good.inventory.models[0].options.times == 1  # the plugin's default
    with pytest.raises(InventoryError) as err:
        load_text(
            inventory("echo", "    options: {greting: hello, times: many}\n"),
            "f.yaml",
            known_runtimes=catalog,
        )
    assert err.value.problems == [
        "f.yaml:9:15: models[0].options.greting: unknown key (did you mean greeting?)",
        "f.yaml:9:38: models[0].options.times: Input should be a valid integer, unable to parse "
        "string as an integer",
    ]


def test_a_plugin_health_check_kind_runs_with_its_validated_settings(site: Path) -> None:
    distribution(site, "fleetctl-echo")
    kinds = load_plugins(entry_points(site)).check_kinds
    ok = HealthCheck("echo_check", "x", params={"want": "x"})
    assert run_plugin_check("http://127.0.0.1:1", ok, 1.0, kinds) == CheckResult(True, "asked x")
    wrong = HealthCheck("echo_check", "y", params={"want": "x"})
    assert not run_plugin_check("http://127.0.0.1:1", wrong, 1.0, kinds).ok
    bad = run_plugin_check("e", HealthCheck("echo_check", "x", params={"wnt": "x"}), 1.0, kinds)
    assert bad == CheckResult(False, "echo_check check: want: Field required")
    unknown = run_plugin_check("e", HealthCheck("nope", "x"), 1.0, kinds)
    assert unknown == CheckResult(False, "unknown check kind nope")


def _fleetctl(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "160"}
    return subprocess.run(
        [sys.executable, "-m", "fleetctl", *args],
        capture_output=True,
        text=True,
        cwd=site,
        env=env,
        timeout=120,
    )


def test_commands_that_do_not_need_a_broken_plugin_still_work(tmp_path: Path) -> None:
    distribution(tmp_path, "fleetctl-broken", "raise RuntimeError('half-installed')\n")
    (tmp_path / "uses-nim.yaml").write_text(inventory("nim"))
    (tmp_path / "uses-echo.yaml").write_text(inventory("echo"))
    assert _fleetctl(tmp_path, "--help").returncode == 0
    r = _fleetctl(tmp_path, "validate", "-f", "uses-nim.yaml")
    assert r.returncode == 0, r.stderr
    r = _fleetctl(tmp_path, "plan", "--offline", "-f", "uses-nim.yaml", "--output", "json")
    assert r.returncode == 0, r.stderr
    r = _fleetctl(tmp_path, "history", "-f", "uses-nim.yaml")  # its own answer, no plugin's
    assert r.returncode == 1 and r.stderr.startswith("error: no state at"), r.stderr
    assert "fleetctl-broken" not in r.stderr

    r = _fleetctl(tmp_path, "validate", "-f", "uses-echo.yaml")
    assert r.returncode == ExitCode.PLUGIN, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "fleetctl-broken" in line and "RuntimeError: half-installed" in line
    assert "Traceback" not in r.stderr


def test_a_duplicate_runtime_stops_commands_with_one_line(tmp_path: Path) -> None:
    distribution(tmp_path, "fleetctl-shadow", runtime="triton")
    (tmp_path / "uses-nim.yaml").write_text(inventory("nim"))
    r = _fleetctl(tmp_path, "validate", "-f", "uses-nim.yaml")
    assert r.returncode == ExitCode.PLUGIN
    (line,) = r.stderr.strip().splitlines()
    assert "fleetctl-shadow" in line and "which fleetctl already provides" in line
