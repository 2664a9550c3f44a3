"""The plugin registry, built by a factory (never at import time).

The built-in runtimes and every plugin of the `fleetctl` entry-point group go through the
same hooks and the same checks. A plugin is refused when it cannot be imported, when it
declares no hook API version or one of another major version (it is then left out, and
named only when an inventory needs a runtime nobody provides, so commands that do not
need it still work), and when it registers a runtime, a block key or a health-check kind
that another distribution already provides (a `PluginError`: one line naming both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import EntryPoint
from typing import Any

import pluggy

from fleetctl.core.runtime_blocks import OPTIONS, RUNTIME_KEYS, RuntimeBlock, RuntimeCatalog
from fleetctl.errors import FleetctlError, PluginError
from fleetctl.runtimes import hookspecs
from fleetctl.runtimes.spec import (
    BUILTIN_CHECK_KINDS,
    CheckKind,
    CheckResult,
    HealthCheck,
    Runtime,
)

ENTRY_POINT_GROUP = "fleetctl"
BUILTIN_DISTRIBUTION = "fleetctl"
BUILTIN_MODULES = ("fleetctl.runtimes.nim", "fleetctl.runtimes.triton")


@dataclass(frozen=True)
class Plugins:
    runtimes: Mapping[str, Runtime] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)  # runtime -> its distribution
    check_kinds: Mapping[str, CheckKind] = field(default_factory=dict)
    broken: tuple[str, ...] = ()  # one line per plugin left out

    def catalog(self) -> RuntimeCatalog:
        return RuntimeCatalog(
            {
                name: RuntimeBlock(getattr(rt, "config_key", OPTIONS), getattr(rt, "config", None))
                for name, rt in self.runtimes.items()
            },
            self.broken,
        )


def make_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    """A plugin manager with the hook specs; with `load_entry_points`, the built-ins and
    every installed plugin registered (see `load_plugins` for the checks)."""
    pm = pluggy.PluginManager("fleetctl")
    pm.add_hookspecs(hookspecs)
    if load_entry_points:
        _register_all(pm, _group_entry_points(), [])
    return pm


def _group_entry_points() -> list[EntryPoint]:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def distribution_of(ep: EntryPoint) -> str:
    """The distribution that declares an entry point (its name as installed)."""
    dist = getattr(ep, "dist", None)
    name = dist.metadata["Name"] if dist is not None else None
    return str(name) if name else f"<entry point {ep.name}>"


def api_problem(plugin: object, who: str) -> str | None:
    """Why a plugin's declared hook API version is refused, if it is."""
    declared = getattr(plugin, "FLEETCTL_API_VERSION", None)
    ours = hookspecs.API_VERSION
    if declared is None:
        return f"plugin {who} declares no FLEETCTL_API_VERSION (this fleetctl's hook API is {ours})"
    major = str(declared).split(".", 1)[0]
    if not major.isdigit():
        return f"plugin {who} declares FLEETCTL_API_VERSION {declared!r}: give MAJOR.MINOR, e.g. {ours!r}"
    if major != ours.split(".", 1)[0]:
        return (
            f"plugin {who} is built for fleetctl hook API {declared}, this fleetctl speaks {ours}: "
            "install a version of the plugin made for it"
        )
    return None


def _register_all(
    pm: pluggy.PluginManager, entry_points: Iterable[EntryPoint], broken: list[str]
) -> dict[str, str]:
    """Register the built-ins, then each entry point's plugin; plugin name -> distribution."""
    import importlib

    owners: dict[str, str] = {}
    for module_name in BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        name = module_name.rsplit(".", 1)[-1]
        if not pm.is_registered(module):
            pm.register(module, name=name)
            owners[name] = BUILTIN_DISTRIBUTION
    for ep in entry_points:
        if ep.value in BUILTIN_MODULES:
            continue  # fleetctl's own entry points: registered above (also without metadata)
        who = distribution_of(ep)
        try:
            plugin = ep.load()
        except Exception as exc:  # any failure of a plugin's import leaves it out
            first = (str(exc).strip().splitlines() or [""])[0]
            broken.append(
                f"plugin {who} (entry point {ep.name!r}) failed to import: {type(exc).__name__}: {first}"
            )
            continue
        problem = api_problem(plugin, who)
        if problem is not None:
            broken.append(problem)
            continue
        if pm.is_registered(plugin):
            continue
        name = f"{who}:{ep.name}"
        pm.register(plugin, name=name)
        owners[name] = who
    return owners


def _calls(pm: pluggy.PluginManager, hook: str) -> list[tuple[str, Callable[..., Any]]]:
    """(plugin name, hook function) per plugin implementing the hook, in registration order."""
    impls = getattr(pm.hook, hook).get_hookimpls()
    return [(impl.plugin_name, impl.function) for impl in impls]


def _check_runtime(runtime: object, who: str) -> None:
    from pydantic import BaseModel

    name = getattr(runtime, "name", None)
    if not isinstance(name, str) or not callable(getattr(runtime, "render", None)):
        raise PluginError(
            f"plugin {who}: runtime {runtime!r} needs a 'name' and a 'render(ctx)' method"
        )
    key = getattr(runtime, "config_key", OPTIONS)
    if key not in RUNTIME_KEYS:
        raise PluginError(
            f"plugin {who}: runtime {name!r} has config_key {key!r}; the inventory's keys are "
            + ", ".join(RUNTIME_KEYS)
        )
    model = getattr(runtime, "config", None)
    if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise PluginError(f"plugin {who}: runtime {name!r} config must be a pydantic model class")
    if model is not None and model.model_config.get("extra") != "forbid":
        raise PluginError(
            f"plugin {who}: runtime {name!r} config {model.__name__} must refuse unknown keys "
            '(model_config extra="forbid")'
        )


def _collect(pm: pluggy.PluginManager, owners: Mapping[str, str], broken: list[str]) -> Plugins:
    runtimes: dict[str, Runtime] = {}
    sources: dict[str, str] = {}
    keys: dict[str, str] = {}  # block key (not options) -> runtime
    for plugin_name, function in _calls(pm, "register_runtimes"):
        who = owners.get(plugin_name, plugin_name)

        def register(runtime: object, who: str = who) -> None:
            _check_runtime(runtime, who)
            name: str = runtime.name  # type: ignore[attr-defined]
            if name in runtimes:
                raise PluginError(
                    f"plugin {who} registers runtime {name!r}, which {sources[name]} already "
                    f"provides: uninstall one of the two distributions"
                )
            key = getattr(runtime, "config_key", OPTIONS)
            if key != OPTIONS and key in keys:
                raise PluginError(
                    f"plugin {who} claims the inventory key {key!r} for runtime {name!r}; "
                    f"{sources[keys[key]]} already gives it to runtime {keys[key]!r}"
                )
            if key != OPTIONS:
                keys[key] = name
            runtimes[name] = runtime  # type: ignore[assignment]
            sources[name] = who

        function(register=register)

    kinds: dict[str, CheckKind] = {}
    kind_sources: dict[str, str] = dict.fromkeys(BUILTIN_CHECK_KINDS, BUILTIN_DISTRIBUTION)
    for plugin_name, function in _calls(pm, "register_health_checks"):
        who = owners.get(plugin_name, plugin_name)

        def register_kind(kind: object, who: str = who) -> None:
            if not isinstance(kind, CheckKind) or not callable(kind.probe):
                raise PluginError(
                    f"plugin {who}: a health-check kind must be a CheckKind, not {kind!r}"
                )
            if kind.name in kind_sources:
                raise PluginError(
                    f"plugin {who} registers health-check kind {kind.name!r}, which "
                    f"{kind_sources[kind.name]} already provides: uninstall one of the two distributions"
                )
            kinds[kind.name] = kind
            kind_sources[kind.name] = who

        function(register=register_kind)
    return Plugins(runtimes, sources, kinds, tuple(broken))


def collect_runtimes(pm: pluggy.PluginManager) -> dict[str, Runtime]:
    """The runtimes a plugin manager's plugins register (checked as `load_plugins` does)."""
    return dict(_collect(pm, {}, []).runtimes)


def load_plugins(entry_points: Iterable[EntryPoint] | None = None) -> Plugins:
    """The built-ins and the plugins of `entry_points` (default: the installed ones)."""
    pm = make_plugin_manager(load_entry_points=False)
    broken: list[str] = []
    eps = _group_entry_points() if entry_points is None else entry_points
    owners = _register_all(pm, eps, broken)
    return _collect(pm, owners, broken)


@lru_cache(maxsize=1)
def plugins() -> Plugins:
    return load_plugins()


def runtimes() -> Mapping[str, Runtime]:
    return plugins().runtimes


def runtime_catalog() -> RuntimeCatalog:
    return plugins().catalog()


def builtin_catalog() -> RuntimeCatalog:
    """The built-in runtimes only: what the committed inventory schema describes."""
    return load_plugins(entry_points=[]).catalog()


def runtime_names() -> list[str]:
    return sorted(runtimes())


def get_runtime(name: str) -> Runtime:
    try:
        return runtimes()[name]
    except KeyError:
        broken = "".join(f"; {line}" for line in plugins().broken)
        raise FleetctlError(
            f"unknown runtime {name!r} (known: {', '.join(runtime_names())}){broken}"
        ) from None


def run_plugin_check(
    endpoint: str,
    check: HealthCheck,
    timeout_s: float,
    kinds: Mapping[str, CheckKind] | None = None,
) -> CheckResult:
    """Run a check of a kind a plugin registered (of `kinds`, default the installed
    plugins'), behind the probe interface."""
    from pydantic import ValidationError

    kind = (plugins().check_kinds if kinds is None else kinds).get(check.kind)
    if kind is None:
        return CheckResult(False, f"unknown check kind {check.kind}")
    settings: Any = None
    if kind.settings is not None:
        try:
            settings = kind.settings.model_validate(dict(check.params))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            return CheckResult(False, f"{check.kind} check: {where}: {err['msg']}")
    try:
        return kind.probe(endpoint, check, settings, timeout_s)
    except Exception as exc:  # a probe that raises means "not ready", with its reason
        return CheckResult(False, f"{check.kind} {check.target}: {type(exc).__name__}: {exc}")
