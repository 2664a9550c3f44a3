"""The test bed itself: real engines, the Triton image and the NIM stand-in.

These tests start real containers (host networking, 127.0.0.1 only) on the
three local engines; nothing is mocked. They guard the assumptions the rest
of fleetctl's integration tests make about the test bed.
"""

from __future__ import annotations

import os
import time
import uuid

import docker.errors
import httpx
import numpy as np
import pytest

pytestmark = pytest.mark.integration

MODELS = ("embeddings", "reranker", "safety-guard")
HASH_LABEL = "fleetctl-testbed.input-hash"
NGC_KEY = "nvapi-test-key-do-not-print-0123456789"


# ----------------------------------------------------------------- helpers
def _name(prefix: str) -> str:
    return f"fleetctl-test-{prefix}-{uuid.uuid4().hex[:8]}"


def _run(
    testbed,
    image: str,
    *,
    engine: str = "a",
    command=None,
    environment=None,
    volumes=None,
    prefix: str = "c",
):
    return testbed.client(engine).containers.run(
        image,
        command=command,
        detach=True,
        name=_name(prefix),
        network_mode="host",
        environment=environment or {},
        volumes=volumes or {},
        labels=dict(testbed.test_labels),
    )


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2.0).status_code
    except httpx.HTTPError:
        return None


def _logs(container) -> str:
    return container.logs(stdout=True, stderr=True).decode("utf-8", "replace")


def _standin_env(port: int, **extra: str) -> dict[str, str]:
    env = {"NGC_API_KEY": NGC_KEY, "NIM_HOST": "127.0.0.1", "NIM_SERVER_PORT": str(port)}
    env.update(extra)
    return env


def _wait_exit(container, timeout: float = 30) -> int:
    return container.wait(timeout=timeout)["StatusCode"]


# ----------------------------------------------------------------- engines
@pytest.mark.parametrize("engine", ["a", "b", "c"])
def test_engine_answers_without_bridge(testbed, engine):
    client = testbed.client(engine)
    assert client.ping()
    info = client.info()
    assert info["ServerVersion"]
    # --bridge=none: no default bridge network, so containers cannot get
    # private 172.17.x addresses; only host and none remain.
    names = {n.name for n in client.networks.list()}
    assert "bridge" not in names
    assert "host" in names


def test_engines_are_distinct(testbed):
    ids = {testbed.client(e).info()["ID"] for e in ("a", "b", "c")}
    assert len(ids) == 3


def test_env_file_names_the_engines(testbed):
    text = (testbed.run_dir / "env").read_text()
    for engine, url in testbed.hosts.items():
        assert f"FLEETCTL_TESTBED_HOST_{engine.upper()}={url}" in text
    assert testbed.host_a == f"unix://{testbed.run_dir}/a.sock"


# ------------------------------------------------------------------ images
@pytest.mark.parametrize("engine", ["a", "b", "c"])
def test_small_images_on_every_engine(testbed, engine):
    client = testbed.client(engine)
    a = testbed.client("a")
    for tag in testbed.images.on_every_engine:
        image = client.images.get(tag)
        assert image.labels.get(HASH_LABEL), f"{tag} lacks its input-hash label"
        assert image.id == a.images.get(tag).id, f"{tag} on {engine} differs from engine a"


def test_triton_image_on_engine_a(testbed):
    image = testbed.client("a").images.get(testbed.images.triton)
    assert image.labels.get(HASH_LABEL)
    assert image.attrs["Config"]["Entrypoint"] == ["/opt/tritonserver/bin/tritonserver"]


def test_standin_tags_are_distinct_images(testbed):
    client = testbed.client("a")
    v1 = client.images.get(testbed.images.nim_standin)
    v2 = client.images.get(testbed.images.nim_standin_v2)
    assert v1.id != v2.id
    assert "STANDIN_IMAGE_VERSION=1" in v1.attrs["Config"]["Env"]
    assert "STANDIN_IMAGE_VERSION=2" in v2.attrs["Config"]["Env"]


def test_tiny_image_serves_and_stops_fast(testbed, docker_cleanup, port_block):
    port = port_block[0]
    c = _run(testbed, testbed.images.tiny, environment={"PORT": str(port)}, prefix="tiny")
    testbed.wait_until(lambda: _status(f"http://127.0.0.1:{port}/") == 200, 10, what="tiny httpd")
    assert "fleetctl-testbed tiny:1" in httpx.get(f"http://127.0.0.1:{port}/").text
    t0 = time.monotonic()
    c.stop(timeout=10)
    assert time.monotonic() - t0 < 3, "tiny container should stop on SIGTERM, not after the timeout"


# ------------------------------------------------------------------ triton
@pytest.fixture(scope="module")
def triton(testbed):
    """A Triton 2.51 server on engine a with the three test bed models loaded."""
    ports = testbed.take_port_block()
    http_port, grpc_port, metrics_port = ports[0], ports[1], ports[2]
    args = [
        "--model-repository=/models",
        "--model-control-mode=explicit",
        *[f"--load-model={m}" for m in MODELS],
        "--backend-directory=/opt/tritonserver/backends",
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={metrics_port}",
    ]
    container = _run(
        testbed,
        testbed.images.triton,
        command=args,
        prefix="triton",
        volumes={str(testbed.model_repository): {"bind": "/models", "mode": "ro"}},
    )
    t0 = time.monotonic()
    try:
        testbed.wait_until(
            lambda: _status(f"http://127.0.0.1:{http_port}/v2/health/ready") == 200,
            60,
            what="triton /v2/health/ready",
        )
    except TimeoutError:
        logs = _logs(container)
        container.remove(force=True)
        pytest.fail(f"Triton not ready within 60 s; log tail:\n{logs[-4000:]}")
    ready_s = time.monotonic() - t0
    yield {
        "container": container,
        "http": http_port,
        "grpc": grpc_port,
        "metrics": metrics_port,
        "ready_s": ready_s,
    }
    try:
        container.remove(force=True)
    except (docker.errors.NotFound, docker.errors.APIError):
        pass


def test_triton_ready_within_60s(triton):
    assert triton["ready_s"] < 60
    r = httpx.get(f"http://127.0.0.1:{triton['http']}/v2/health/live", timeout=5)
    assert r.status_code == 200


def test_triton_repository_index_lists_models_ready(triton):
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(url=f"127.0.0.1:{triton['http']}")
    assert client.is_server_live()
    assert client.is_server_ready()
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert set(MODELS) <= set(index)
    for name in MODELS:
        assert index[name]["state"] == "READY", index[name]
        assert client.is_model_ready(name)
    assert client.get_server_metadata()["version"] == "2.51.0"


def test_triton_embeddings_infer(triton):
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(url=f"127.0.0.1:{triton['http']}")
    texts = np.array([b"hello", b"world", b"hello"], dtype=np.object_)
    inp = triton_http.InferInput("TEXT", list(texts.shape), "BYTES")
    inp.set_data_from_numpy(texts)
    result = client.infer(
        "embeddings", [inp], outputs=[triton_http.InferRequestedOutput("EMBEDDING")]
    )
    emb = result.as_numpy("EMBEDDING")
    assert emb.shape == (3, 16)
    assert emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(emb[0], emb[2])  # deterministic
    assert not np.array_equal(emb[0], emb[1])


def test_triton_reranker_and_safety_guard_infer(triton):
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(url=f"127.0.0.1:{triton['http']}")
    query = triton_http.InferInput("QUERY", [1], "BYTES")
    query.set_data_from_numpy(np.array([b"red apple"], dtype=np.object_))
    passages = triton_http.InferInput("PASSAGES", [3], "BYTES")
    passages.set_data_from_numpy(
        np.array([b"a red car", b"Apple pie, red!", b"nothing"], dtype=np.object_)
    )
    scores = client.infer("reranker", [query, passages]).as_numpy("SCORES")
    np.testing.assert_allclose(scores, [0.5, 1.0, 0.0])

    text = triton_http.InferInput("TEXT", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"hello there", b"write malware now"], dtype=np.object_))
    result = client.infer("safety-guard", [text])
    assert [x.decode() for x in result.as_numpy("LABEL")] == ["safe", "unsafe"]
    np.testing.assert_allclose(result.as_numpy("SCORE"), [0.0, 1.0])


def test_triton_unload_and_load(triton):
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(url=f"127.0.0.1:{triton['http']}")
    client.unload_model("reranker")

    def testbed_states():
        return {m["name"]: m.get("state") for m in client.get_model_repository_index()}

    deadline = time.monotonic() + 30
    while (
        testbed_states().get("reranker") in ("READY", "UNLOADING") and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert testbed_states().get("reranker") == "UNAVAILABLE"
    assert not client.is_model_ready("reranker")
    client.load_model("reranker")
    assert client.is_model_ready("reranker")
    assert testbed_states()["reranker"] == "READY"


def test_triton_metrics_endpoint(triton):
    r = httpx.get(f"http://127.0.0.1:{triton['metrics']}/metrics", timeout=5)
    assert r.status_code == 200
    assert "nv_inference_request_success" in r.text


# ------------------------------------------------------------ NIM stand-in
@pytest.mark.parametrize("key_env", [{}, {"NGC_API_KEY": ""}], ids=["unset", "empty"])
def test_standin_refuses_without_ngc_api_key(testbed, docker_cleanup, port_block, key_env):
    env = {"NIM_HOST": "127.0.0.1", "NIM_SERVER_PORT": str(port_block[0]), **key_env}
    c = _run(testbed, testbed.images.nim_standin, environment=env, prefix="nim-nokey")
    assert _wait_exit(c) == 1
    err = c.logs(stdout=False, stderr=True).decode()
    assert "NGC_API_KEY" in err
    assert _status(f"http://127.0.0.1:{port_block[0]}/v1/health/live") is None


def test_standin_becomes_ready_and_speaks_the_contract(testbed, docker_cleanup, port_block):
    port = port_block[0]
    base = f"http://127.0.0.1:{port}"
    env = _standin_env(
        port,
        STANDIN_START_DELAY_S="2",
        NIM_SERVED_MODEL_NAME="meta/llama-3.1-8b-instruct-test",
        NIM_MODEL_PROFILE="tensorrt_llm-h100-fp8-tp1-latency",
        NIM_KVCACHE_PERCENT="0.7",
        NIM_PASSTHROUGH_ARGS="--max-num-seqs 8",
        NVIDIA_VISIBLE_DEVICES="0",
    )
    c = _run(testbed, testbed.images.nim_standin, environment=env, prefix="nim")
    testbed.wait_until(lambda: _status(f"{base}/v1/health/live") == 200, 15, what="stand-in live")
    assert _status(f"{base}/v1/health/ready") == 503  # still "loading" (2 s delay)
    testbed.wait_until(lambda: _status(f"{base}/v1/health/ready") == 200, 15, what="stand-in ready")

    models = httpx.get(f"{base}/v1/models", timeout=5).json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["meta/llama-3.1-8b-instruct-test"]

    r = httpx.post(
        f"{base}/v1/chat/completions",
        timeout=5,
        json={
            "model": "meta/llama-3.1-8b-instruct-test",
            "messages": [{"role": "user", "content": "ping from fleetctl"}],
            "max_tokens": 16,
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert "ping from fleetctl" in body["choices"][0]["message"]["content"]
    assert body["usage"]["total_tokens"] > 0
    again = httpx.post(
        f"{base}/v1/chat/completions",
        timeout=5,
        json={
            "model": "meta/llama-3.1-8b-instruct-test",
            "messages": [{"role": "user", "content": "ping from fleetctl"}],
            "max_tokens": 16,
        },
    ).json()
    assert again["choices"][0]["message"]["content"] == body["choices"][0]["message"]["content"]

    metrics = httpx.get(f"{base}/v1/metrics", timeout=5).text
    assert 'nim_standin_http_requests_total{path="/v1/chat/completions",code="200"} 2' in metrics
    assert "request_success_total" in metrics

    logs = _logs(c)
    assert "Selected profile: " in logs
    assert "(tensorrt_llm-h100-fp8-tp1-latency)" in logs
    assert "NIM_KVCACHE_PERCENT=0.7" in logs
    assert "NIM_PASSTHROUGH_ARGS=--max-num-seqs 8" in logs
    assert "NVIDIA_VISIBLE_DEVICES=0" in logs
    assert NGC_KEY not in logs, "the stand-in must never print NGC_API_KEY"


def test_standin_uses_nim_http_api_port_when_server_port_unset(testbed, docker_cleanup, port_block):
    port = port_block[0]
    env = {
        "NGC_API_KEY": NGC_KEY,
        "NIM_HOST": "127.0.0.1",
        "NIM_HTTP_API_PORT": str(port),
        "STANDIN_START_DELAY_S": "0",
    }
    _run(testbed, testbed.images.nim_standin, environment=env, prefix="nim-apiport")
    testbed.wait_until(
        lambda: _status(f"http://127.0.0.1:{port}/v1/health/ready") == 200,
        15,
        what="stand-in ready on NIM_HTTP_API_PORT",
    )


def test_standin_never_ready(testbed, docker_cleanup, port_block):
    port = port_block[0]
    c = _run(
        testbed,
        testbed.images.nim_standin,
        prefix="nim-never",
        environment=_standin_env(port, STANDIN_NEVER_READY="1", STANDIN_START_DELAY_S="0"),
    )
    testbed.wait_until(
        lambda: _status(f"http://127.0.0.1:{port}/v1/health/live") == 200, 15, what="stand-in live"
    )
    for _ in range(10):  # 3 s of polling: never ready
        assert _status(f"http://127.0.0.1:{port}/v1/health/ready") == 503
        time.sleep(0.3)
    c.reload()
    assert c.status == "running"


def test_standin_crash_after(testbed, docker_cleanup, port_block):
    port = port_block[0]
    c = _run(
        testbed,
        testbed.images.nim_standin,
        prefix="nim-crash",
        environment=_standin_env(port, STANDIN_CRASH_AFTER_S="1"),
    )
    assert _wait_exit(c, timeout=20) == 1
    logs = _logs(c)
    assert "ERROR" in logs and "STANDIN_CRASH_AFTER_S" in logs


def test_standin_fallback_profile(testbed, docker_cleanup, port_block):
    port = port_block[0]
    c = _run(
        testbed,
        testbed.images.nim_standin,
        prefix="nim-fallback",
        environment=_standin_env(port, STANDIN_FALLBACK_PROFILE="1"),
    )
    testbed.wait_until(
        lambda: _status(f"http://127.0.0.1:{port}/v1/health/ready") == 200,
        15,
        what="stand-in ready",
    )
    logs = _logs(c)
    assert "WARNING" in logs and "falling back" in logs
    assert "Selected profile: " in logs and "(vllm-bf16-tp1-pp1)" in logs
    assert "tensorrt_llm" not in logs.split("Selected profile:")[1].splitlines()[0]


def test_standin_latency_delays_completions_only(testbed, docker_cleanup, port_block):
    port = port_block[0]
    base = f"http://127.0.0.1:{port}"
    c = _run(
        testbed,
        testbed.images.nim_standin,
        prefix="nim-slow",
        environment=_standin_env(port, STANDIN_LATENCY_MS="400", STANDIN_START_DELAY_S="0"),
    )
    testbed.wait_until(lambda: _status(f"{base}/v1/health/ready") == 200, 15, what="stand-in ready")
    t0 = time.monotonic()
    assert httpx.get(f"{base}/v1/models", timeout=5).status_code == 200
    assert time.monotonic() - t0 < 0.3  # health and model-list routes answer at once
    body = {
        "model": "meta/llama-3.1-8b-instruct",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 1,
    }
    t0 = time.monotonic()
    assert httpx.post(f"{base}/v1/chat/completions", json=body, timeout=5).status_code == 200
    assert time.monotonic() - t0 >= 0.4
    assert "STANDIN_LATENCY_MS=400" in _logs(c)


@pytest.mark.parametrize("engine", ["b", "c"])
def test_standin_runs_on_other_engines(testbed, docker_cleanup, port_block, engine):
    port = port_block[0]
    c = _run(
        testbed,
        testbed.images.nim_standin_v2,
        engine=engine,
        prefix=f"nim-{engine}",
        environment=_standin_env(port, STANDIN_START_DELAY_S="0"),
    )
    testbed.wait_until(
        lambda: _status(f"http://127.0.0.1:{port}/v1/health/ready") == 200,
        15,
        what=f"stand-in ready on engine {engine}",
    )
    version = httpx.get(f"http://127.0.0.1:{port}/v1/version", timeout=5).json()
    assert version["standin"] is True and version["image_version"] == "2"
    t0 = time.monotonic()
    c.stop(timeout=10)
    assert time.monotonic() - t0 < 5, "stand-in should exit promptly on SIGTERM"


def test_docker_cleanup_removes_labelled_containers(testbed, port_block, triton):
    started = time.time()
    client = testbed.client("b")
    owned = client.containers.run(
        testbed.images.tiny,
        detach=True,
        name=_name("owned"),
        network_mode="host",
        environment={"PORT": str(port_block[0])},
        labels={"io.fleetctl.owner": "someone", "io.fleetctl.fleet": f"t99-{os.getpid()}"},
    )
    # A managed container of a fleet another session made (its fleet name ends in its pid).
    elsewhere = client.containers.run(
        testbed.images.tiny,
        detach=True,
        name=_name("elsewhere"),
        network_mode="host",
        environment={"PORT": str(port_block[3])},
        labels={"io.fleetctl.owner": "someone", "io.fleetctl.fleet": "t99-1"},
    )
    tagged = _run(
        testbed,
        testbed.images.tiny,
        engine="c",
        prefix="tagged",
        environment={"PORT": str(port_block[1])},
    )
    foreign = client.containers.run(
        testbed.images.tiny,
        detach=True,
        name=_name("foreign"),
        network_mode="host",
        environment={"PORT": str(port_block[2])},
        labels={"io.fleetctl.test": "1", "io.fleetctl.test.session": "another-session"},
    )
    try:
        assert testbed.cleanup(since=started) >= 2
        ids = {c.id for e in ("a", "b", "c") for c in testbed.client(e).containers.list(all=True)}
        assert owned.id not in ids and tagged.id not in ids
        # Left alone: older containers (the module's Triton server) and
        # containers of another test session sharing the engines.
        assert triton["container"].id in ids
        assert foreign.id in ids and elsewhere.id in ids
    finally:
        for leftover in (foreign, elsewhere):
            try:
                leftover.remove(force=True)
            except docker.errors.APIError:
                pass
