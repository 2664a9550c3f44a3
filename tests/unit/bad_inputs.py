"""Malformed inventories, one per mistake a person can make: shared by
tests/unit/test_bad_input.py and tests/benchmarks/bench_bad_input.py."""

from __future__ import annotations

HOST = """\
hosts:
  - name: h1
    simulated: true
    gpus: {count: 2, memory_gb: 80}
"""
MODEL = "models:\n  - {name: m, version: '1', runtime: nim, image: i, gpu_memory_gb: 4%s}\n"


def model(extra: str = "") -> str:
    return HOST + MODEL % extra


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ",".join(["x"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + f"\nhosts: *a{levels - 1}\n"


# name -> (file content, text the one-line message must contain). Content is bytes where
# the case is about bytes.
CASES: dict[str, tuple[str | bytes, str]] = {
    "binary": (b"\x7fELF\x02\x01\x01\x00\x00\x00", "binary file"),
    "not utf-8": ("hosts: [caf\xe9]\n".encode("latin-1"), "not UTF-8"),
    "utf-16": ("hosts: []\n".encode("utf-16"), "UTF-8"),
    "control character": ('hosts:\n  - name: "a\x07"\n', "control characters"),
    "python tag": ("hosts: !!python/object/apply:os.system [ls]\n", "YAML tag"),
    "custom tag": (HOST.replace("simulated: true", "simulated: !yes true"), "YAML tag !yes"),
    "binary tag": ("hosts: !!binary aGVsbG8=\n", "YAML tag"),
    "complex key": ("? [a, b]\n: 1\n" + HOST, "a key must be plain text"),
    "mapping key": ("{a: 1}: 2\n" + HOST, "a key must be plain text"),
    "null key": ("~: 1\n" + HOST, "empty or null key"),
    "empty key": ('"": 1\n' + HOST, "empty or null key"),
    "recursive alias": ("a: &a [*a]\n" + HOST, "recursive alias"),
    "recursive mapping": ("a: &a {b: *a}\n" + HOST, "recursive alias"),
    "alias bomb": (alias_bomb(), "aliases expand to more than"),
    "deep nesting": ("x: " + "[" * 200 + "]" * 200 + "\n" + HOST, "nested deeper"),
    "merge key": ("base: &b {simulated: true}\nhosts:\n  - {<<: *b, name: h}\n", "merge keys"),
    "not a mapping": ("- just\n- a list\n", "must be a mapping"),
    "syntax": ("hosts:\n  - name: h1\n    gpus: {count: 2\n", "<yaml>"),
    "tab indent": ("hosts:\n\t- name: h1\n", "<yaml>"),
    "duplicate key": (HOST + "    simulated: false\n", "duplicate key"),
    "typo": (model(", gpu_memmory_gb: 3"), "did you mean gpu_memory_gb?"),
    "typo in host": (HOST.replace("gpus:", "gpu:"), "did you mean gpus?"),
    "case typo": (model(", Replicas: 2"), "did you mean replicas?"),
    "infinity": (model().replace("gpu_memory_gb: 4", "gpu_memory_gb: .inf"), "finite number"),
    "nan": (model(", sla_ms: .nan"), "finite number"),
    "negative infinity": (model(", latency_ms: -.inf"), "finite number"),
    "boolean as text": (
        HOST.replace("simulated: true", "simulated: 'true'"),
        "write true or false without quotes",
    ),
    "number as text": (HOST.replace("count: 2", "count: '2'"), "write the number without quotes"),
    "too many replicas": (model(", replicas: 41"), "could hold at most 40"),
    "exclusive replicas": (model(", replicas: 3, exclusive: true"), "could hold at most 2"),
    "latency at sla": (model(", sla_ms: 50, latency_ms: 50"), "at or above its SLA"),
    "latency over sla in a pin": (
        model(", sla_ms: 50, pins: [{version: '0', image: i, customers: [a], latency_ms: 80}]"),
        "at or above its SLA",
    ),
    "reserve all memory": (HOST + "    reserve_gb: 80\n", "nothing would be left"),
    "port range too small": (HOST + "    ports: 20000-20003\n", "holds no block of 4 ports"),
    "port range backwards": (HOST + "    ports: 20999-20000\n", "LOW <= HIGH"),
    "too few port blocks": (
        HOST
        + "    ports: 20000-20011\nmodels:\n  - {name: m, version: '1', runtime: nim, image: i, gpu_memory_gb: 1, replicas: 3}\n",
        "replica port blocks",
    ),
    "overlapping ranges": (
        HOST
        + "    ports: 20000-20999\n  - {name: h2, docker: 'unix:///run/b.sock', simulated: true, "
        "gpus: {count: 1, memory_gb: 8}, ports: 20500-21499}\n",
        "overlaps 20000-20999 of host h1",
    ),
    "same docker endpoint": (
        HOST
        + "  - {name: h2, docker: 'unix:///var/run//docker.sock', ports: 30000-30999, simulated: true, "
        "gpus: {count: 1, memory_gb: 8}}\n",
        "already uses this Docker endpoint",
    ),
    "same ssh endpoint spelled twice": (
        "hosts:\n  - {name: a, docker: 'ssh://ops@gpu1', gpus: {count: 1, memory_gb: 8}}\n"
        "  - {name: b, docker: 'ssh://ops@GPU1:22', gpus: {count: 1, memory_gb: 8}}\n",
        "already uses this Docker endpoint",
    ),
    "bad address": (HOST + "    address: 'gpu host 1'\n", "not an IP address or host name"),
    "bad publish address": (HOST + "    publish_address: localhost\n", "not an IP address"),
    "bad front door listen": (
        HOST + "    front_door: {listen: 'every where'}\n",
        "not an IP address",
    ),
    "relative unix socket": (HOST + "    docker: 'unix://docker.sock'\n", "absolute path"),
    "tcp without port": (
        HOST + "    docker: 'tcp://gpu1'\n    allow_insecure_tcp: true\n",
        "needs a port",
    ),
    "tcp bad port": (
        HOST + "    docker: 'tcp://gpu1:99999'\n    allow_insecure_tcp: true\n",
        "malformed endpoint",
    ),
    "ssh with a path": (HOST + "    docker: 'ssh://ops@gpu1/var/run'\n", "nothing after it"),
    "ssh with a password": (
        HOST + "    docker: 'ssh://ops:hunter2@gpu1'\n",
        "must not carry a password",
    ),
    "bad endpoint host": (HOST + "    docker: 'ssh://ops@gpu_1!'\n", "not a host name"),
    "unknown scheme": (HOST + "    docker: 'http://gpu1:2375'\n", "must start with unix://"),
}
