"""Image pulls against the test bed's registry on loopback (tests/testbed/registry.sh).

No test pulls a name without a registry host: the engines would ask the public registry.
Every pull here goes to 127.0.0.1, to Debian's docker-registry 2.8 that setup.sh runs.
"""

from __future__ import annotations

import ast
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from fleetctl.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]
CHAT = {"messages": [{"role": "user", "content": "hello"}]}


def _image_ids(testbed: Any, engine: str) -> set[str]:
    return {t for img in testbed.client(engine).api.images() for t in (img.get("RepoTags") or [])}


def _container(testbed: Any, engine: str, name: str) -> dict[str, Any]:
    return testbed.client(engine).api.inspect_container(name)


def test_an_image_only_in_the_registry_is_pulled_by_apply_and_serves(
    make_fleet: Any, testbed: Any, registry: Any
) -> None:
    fleet = make_fleet(hosts={"host-b": testbed.host_b})
    # Fresh tags: no engine has these names, so both must come from the registry.
    model_image = registry.fresh_tag("fleetctl-testbed/nim-standin:2")
    door_image = registry.fresh_tag("fleetctl-testbed/front-door:1")
    assert not {model_image, door_image} & _image_ids(testbed, "b")
    fleet.front_door["image"] = door_image
    fleet.nim("chat-llm", model_image, memory=10)

    t0 = time.monotonic()
    r = fleet.apply()
    print(f"figure: pulled when missing: 2 images, apply {time.monotonic() - t0:.1f} s")
    assert r.returncode == 0, r.stdout + r.stderr
    assert {model_image, door_image} <= _image_ids(testbed, "b")
    # What runs is the registry's manifest, and it serves, directly and behind the front door.
    info = testbed.client("b").api.inspect_image(model_image)
    digest = registry.digest("fleetctl-testbed/nim-standin:2")
    assert f"{model_image.rsplit(':', 1)[0]}@{digest}" in info["RepoDigests"]
    endpoint = fleet.endpoint("chat-llm@1")
    assert httpx.get(endpoint + "/v1/health/ready", timeout=5).status_code == 200
    reply = httpx.post(
        fleet.front_door_url("host-b") + "/v1/chat/completions",
        json={"model": "chat-llm", **CHAT},
        timeout=10,
    )
    assert reply.status_code == 200 and reply.headers["x-fleetctl-deployment"] == "chat-llm@1"
    # Present now: the second apply pulls nothing and changes nothing.
    again = fleet.apply()
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to do" in again.stdout, again.stdout


def test_a_missing_tag_fails_only_its_deployment_before_anything_stops(
    make_fleet: Any, testbed: Any, registry: Any, steady_load: Any
) -> None:
    fleet = make_fleet(hosts={"host-b": testbed.host_b})
    keeper = fleet.nim("keeper", testbed.images.nim_standin, memory=10)
    mover = fleet.nim("mover", testbed.images.nim_standin, memory=10)
    assert fleet.apply().returncode == 0
    old = _container(testbed, "b", fleet.container("keeper@1"))

    missing = f"{registry.address}/fleetctl-testbed/nim-standin:no-such-tag"
    keeper["image"] = missing
    mover["image"] = registry.fresh_tag("fleetctl-testbed/nim-standin:2")
    url = fleet.front_door_url("host-b") + "/v1/chat/completions"
    with steady_load(url, {"model": "keeper", **CHAT}) as load:
        r = fleet.apply(env={"COLUMNS": "1000"})  # the line unwrapped by the terminal width
        time.sleep(0.5)  # a few requests after the apply ended, too
    out = r.stdout + r.stderr
    assert r.returncode == ExitCode.ROLLOUT_FAILED, out
    assert "Traceback" not in out
    # One line names the image, the host and the registry's answer.
    (reason,) = {
        line.strip()
        for line in out.splitlines()
        if f"image {missing} is not available on host-b" in line
    }
    assert "manifest unknown" in reason, reason
    # The old keeper was never stopped: same container, same start, and it served throughout.
    now = _container(testbed, "b", fleet.container("keeper@1"))
    assert (now["Id"], now["State"]["StartedAt"], now["State"]["Running"]) == (
        old["Id"],
        old["State"]["StartedAt"],
        True,
    )
    print(
        f"figure: missing tag: exit {r.returncode}; the old replica answered {load.ok} requests, {len(load.failures)} failed"
    )
    assert load.ok > 0 and load.failures == [], load.failures[:3]
    assert set(load.served_by) == {"keeper@1"}
    # The other deployment rolled onto the image it pulled.
    moved = _container(testbed, "b", fleet.container("mover@1"))
    assert moved["Config"]["Image"] == mover["image"]
    status = {d["deployment"]: d for d in fleet.status()["deployments"]}
    assert (
        httpx.get(
            status["mover@1"]["replicas"][0]["endpoint"] + "/v1/health/ready", timeout=5
        ).status_code
        == 200
    )


def test_a_registry_that_never_answers_ends_in_the_engines_timeout_with_one_line(
    make_fleet: Any, testbed: Any
) -> None:
    # A listener on loopback that accepts connections and never says a word.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        fleet = make_fleet(hosts={"host-c": testbed.host_c})
        fleet.front_door["enabled"] = False  # only the pulls matter here
        fleet.nim("ok", testbed.images.nim_standin, memory=10)
        image = f"127.0.0.1:{silent.getsockname()[1]}/fleetctl-testbed/nim-standin:1"
        fleet.nim("stuck", image, memory=10)
        t0 = time.monotonic()
        r = fleet.apply(timeout=120, env={"COLUMNS": "1000"})
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        thread.join(timeout=5)
        for s in held:
            s.close()
        silent.close()
    out = r.stdout + r.stderr
    assert r.returncode == ExitCode.ROLLOUT_FAILED, out
    assert "Traceback" not in out
    (reason,) = {
        line.strip()
        for line in out.splitlines()
        if f"image {image} is not available on host-c" in line
    }
    assert any(w in reason for w in ("Timeout", "deadline exceeded", "timed out")), reason
    print(f"figure: silent registry: exit {r.returncode} after {elapsed:.1f} s")
    assert elapsed < 60, elapsed  # the engine's own bound (about 25 s), not a hang
    assert set(fleet.ids("c")) == {fleet.container("ok@1")}


# -- no test sends an engine to a public registry -----------------------------------------

# An image reference: [registry/]path[:tag|@digest], with at least one slash.
_IMAGE = re.compile(
    r"^(?:(?P<registry>[a-z0-9.-]+(?::\d+)?)/)?(?P<path>[a-z0-9._-]+(?:/[a-z0-9._-]+)+)(?::[\w.-]+|@sha256:[0-9a-f]{64})$"
)
_LOOPBACK = re.compile(r"^(127(?:\.\d{1,3}){3}|localhost|\[::1\])(?::\d+)?$")


def _built_by_images_sh() -> set[str]:
    """The `fleetctl-testbed/NAME:TAG` images tests/testbed/images.sh builds."""
    text = (REPO / "tests" / "testbed" / "images.sh").read_text()
    names = set(re.findall(r'"(fleetctl-testbed/[a-z-]+:[\w.]+)"', text))
    standin = re.search(r'STANDIN_REPO="([^"]+)"', text).group(1)  # type: ignore[union-attr]
    tags = re.search(r"STANDIN_TAGS=\(([^)]*)\)", text).group(1).split()  # type: ignore[union-attr]
    return names | {f"{standin}:{t}" for t in tags}


def _engine_facing_files() -> list[Path]:
    """Everything that runs against the test bed's engines: the integration tests, the
    benchmarks that use the test bed, and the demo inventory."""
    files = sorted((REPO / "tests" / "integration").glob("*.py"))
    files += [
        p
        for p in sorted((REPO / "tests" / "benchmarks").glob("*.py"))
        if "fleetctl-testbed" in p.read_text()
    ]
    return files + [REPO / "inventory" / "demo.yaml"]


def _strings(path: Path) -> list[tuple[int, str]]:
    if path.suffix == ".py":
        return [
            (n.lineno, n.value)
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]
    return [
        (i, w.strip("'\""))
        for i, line in enumerate(path.read_text().splitlines(), 1)
        for w in line.split()
    ]


def test_no_engine_facing_test_names_an_image_that_would_be_pulled_from_a_public_registry() -> None:
    built = _built_by_images_sh()
    assert {"fleetctl-testbed/nim-standin:1", "fleetctl-testbed/front-door:1"} <= built
    offenders = []
    seen = 0
    for path in _engine_facing_files():
        for line, text in _strings(path):
            m = _IMAGE.match(text)
            if not m or text.startswith(("/", ".")):
                continue
            seen += 1
            host = m.group("registry")
            if host and "." not in host and ":" not in host and host != "localhost":
                host = None  # "fleetctl-testbed/x:1": the first part is a path, not a registry
            if host is None and text in built:
                continue  # built on the machine and present on the engines: never pulled
            if host is not None and _LOOPBACK.match(host):
                continue  # the test bed's registry, or a closed port, on loopback
            offenders.append(f"{path.relative_to(REPO)}:{line}: {text}")
    print(
        f"figure: {seen} image references in {len(_engine_facing_files())} engine-facing files, {len(offenders)} would leave"
    )
    assert seen > 10  # the scan sees the test bed's images at all
    assert offenders == []
