"""NIM stand-in server for the fleetctl test bed.

THIS IS A STAND-IN, NOT NVIDIA NIM. Real NIM images need a licence key and
NVIDIA's registry, neither of which the test bed can reach, so fleetctl's
tests run this small server instead. It serves no model: its answers are
deterministic echoes. What it does reproduce is the *container contract* that
fleetctl relies on when it deploys a NIM:

* listens on ``NIM_SERVER_PORT``, else ``NIM_HTTP_API_PORT``, else 8000, on
  host ``NIM_HOST`` (default ``0.0.0.0``);
* refuses to start (exit 1, message on stderr) when ``NGC_API_KEY`` is unset
  or empty; the key's value is never printed;
* ``GET /v1/health/live``   200 as soon as the process serves HTTP;
* ``GET /v1/health/ready``  503 until the "model" is loaded, then 200;
* ``GET /v1/models``        OpenAI model list, id = ``NIM_SERVED_MODEL_NAME``;
* ``POST /v1/chat/completions`` (and ``/v1/completions``) OpenAI-shaped answers;
* ``GET /v1/metrics``       Prometheus text;
* ``GET /v1/version``       release information;
* a start-up log with the profile selection line
  ``Selected profile: <id> (<name>)`` (``NIM_MODEL_PROFILE`` honoured) and the
  values of ``NIM_KVCACHE_PERCENT``, ``NIM_PASSTHROUGH_ARGS`` and
  ``NVIDIA_VISIBLE_DEVICES`` it received.

Failure modes, switched on from the environment so that fleetctl's code paths
for each can be exercised against a real container:

``STANDIN_START_DELAY_S``   seconds between start and ready (default 0.5)
``STANDIN_NEVER_READY=1``   /v1/health/ready stays 503 forever
``STANDIN_CRASH_AFTER_S``   log an error and exit with code 1 after N seconds
``STANDIN_FALLBACK_PROFILE=1``  warn that no optimized profile fits and select
                            a generic vLLM profile instead
``STANDIN_LATENCY_MS``      milliseconds every completion request waits before
                            it is answered (default 0): a slow model

Python 3.11 standard library only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STANDIN_RELEASE = "1.0.0-standin"
API_VERSION = "1.0.0"
DEFAULT_MODEL = "meta/llama-3.1-8b-instruct"
DEFAULT_PORT = 8000

LOG = logging.getLogger("nim_standin")


def _profile_id(name: str) -> str:
    """A stable 64-hex id for a profile name, shaped like NIM's profile ids."""
    return hashlib.sha256(("fleetctl-standin-profile:" + name).encode()).hexdigest()


OPTIMIZED_PROFILES = [
    "tensorrt_llm-h100-fp8-tp1-latency",
    "tensorrt_llm-h100-fp8-tp2-latency",
    "tensorrt_llm-h100-fp8-tp4-throughput",
    "tensorrt_llm-h100-fp8-tp8-throughput",
    "tensorrt_llm-a100-bf16-tp1-throughput",
    "tensorrt_llm-a100-bf16-tp2-latency",
]
GENERIC_PROFILES = [
    "vllm-bf16-tp1-pp1",
    "vllm-bf16-tp2-pp1",
    "vllm-bf16-tp4-pp1",
    "vllm-bf16-tp8-pp1",
]
PROFILES = {_profile_id(n): n for n in OPTIMIZED_PROFILES + GENERIC_PROFILES}


class StartupError(Exception):
    """Configuration that a NIM container would refuse at start-up."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value


def _env_float(name: str, default: float | None) -> float | None:
    raw = _env(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise StartupError(f"{name} must be a number, got {raw!r}") from None
    if value < 0:
        raise StartupError(f"{name} must not be negative, got {raw!r}")
    return value


def _env_flag(name: str) -> bool:
    return (_env(name, "") or "").strip().lower() in {"1", "true", "yes", "on"}


def _visible_gpu_count(visible: str | None) -> int:
    if visible is None or visible.strip().lower() in {"", "none", "void"}:
        return 0
    if visible.strip().lower() == "all":
        return 1
    return len([d for d in visible.split(",") if d.strip()])


def _tp_for(count: int) -> int:
    for tp in (8, 4, 2):
        if count >= tp:
            return tp
    return 1


class Config:
    def __init__(self) -> None:
        port_raw = _env("NIM_SERVER_PORT") or _env("NIM_HTTP_API_PORT") or str(DEFAULT_PORT)
        try:
            self.port = int(port_raw)
        except ValueError:
            raise StartupError(
                f"invalid port {port_raw!r} (NIM_SERVER_PORT / NIM_HTTP_API_PORT)"
            ) from None
        if not 0 < self.port < 65536:
            raise StartupError(f"port {self.port} out of range")
        self.host = _env("NIM_HOST", "0.0.0.0")
        self.model = _env("NIM_SERVED_MODEL_NAME", DEFAULT_MODEL)
        self.max_model_len = int(_env("NIM_MAX_MODEL_LEN", "8192"))
        self.kvcache_percent = _env("NIM_KVCACHE_PERCENT")
        self.passthrough_args = _env("NIM_PASSTHROUGH_ARGS")
        self.visible_devices = os.environ.get("NVIDIA_VISIBLE_DEVICES")
        self.requested_profile = _env("NIM_MODEL_PROFILE")
        self.start_delay = _env_float("STANDIN_START_DELAY_S", 0.5)
        self.crash_after = _env_float("STANDIN_CRASH_AFTER_S", None)
        self.never_ready = _env_flag("STANDIN_NEVER_READY")
        self.fallback = _env_flag("STANDIN_FALLBACK_PROFILE")
        latency_ms = _env_float("STANDIN_LATENCY_MS", 0.0) or 0.0
        self.latency_s = latency_ms / 1000.0
        self.image_version = _env("STANDIN_IMAGE_VERSION", "dev")


def select_profile(cfg: Config) -> tuple[str, str]:
    """Return (profile id, profile name) the way NIM reports its choice."""
    tp = _tp_for(max(_visible_gpu_count(cfg.visible_devices), 1))
    if cfg.fallback:
        LOG.warning(
            "No optimized profile is compatible with the detected GPUs "
            "(stand-in: STANDIN_FALLBACK_PROFILE=1); falling back to a generic vllm profile"
        )
        name = f"vllm-bf16-tp{tp}-pp1"
        return _profile_id(name), name
    requested = cfg.requested_profile
    if requested:
        if requested in PROFILES:
            return requested, PROFILES[requested]
        if requested in PROFILES.values():
            return _profile_id(requested), requested
        LOG.warning(
            "NIM_MODEL_PROFILE=%s is not in the stand-in's manifest; using it as given", requested
        )
        return requested, requested
    name = f"tensorrt_llm-h100-fp8-tp{tp}-latency"
    if name not in OPTIMIZED_PROFILES:
        name = f"tensorrt_llm-h100-fp8-tp{tp}-throughput"
    return _profile_id(name), name


class Metrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.running = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.completions_ok = 0
        self.start_time = time.time()

    def count(self, path: str, code: int) -> None:
        with self.lock:
            key = (path, code)
            self.requests[key] = self.requests.get(key, 0) + 1

    def render(self, state: State) -> str:
        with self.lock:
            lines = [
                "# HELP nim_standin_http_requests_total HTTP requests served by the NIM stand-in.",
                "# TYPE nim_standin_http_requests_total counter",
            ]
            for (path, code), n in sorted(self.requests.items()):
                lines.append(f'nim_standin_http_requests_total{{path="{path}",code="{code}"}} {n}')
            model = state.cfg.model
            lines += [
                "# HELP nim_standin_ready 1 when the stand-in reports ready.",
                "# TYPE nim_standin_ready gauge",
                f"nim_standin_ready {1 if state.ready.is_set() else 0}",
                "# HELP num_requests_running Number of requests currently running.",
                "# TYPE num_requests_running gauge",
                f'num_requests_running{{model_name="{model}"}} {self.running}',
                "# HELP num_requests_waiting Number of requests waiting.",
                "# TYPE num_requests_waiting gauge",
                f'num_requests_waiting{{model_name="{model}"}} 0',
                "# HELP gpu_cache_usage_perc KV-cache usage (always 0 in the stand-in).",
                "# TYPE gpu_cache_usage_perc gauge",
                f'gpu_cache_usage_perc{{model_name="{model}"}} 0.0',
                "# HELP prompt_tokens_total Prompt tokens processed.",
                "# TYPE prompt_tokens_total counter",
                f'prompt_tokens_total{{model_name="{model}"}} {self.prompt_tokens}',
                "# HELP generation_tokens_total Tokens generated.",
                "# TYPE generation_tokens_total counter",
                f'generation_tokens_total{{model_name="{model}"}} {self.generation_tokens}',
                "# HELP request_success_total Completed inference requests.",
                "# TYPE request_success_total counter",
                f'request_success_total{{model_name="{model}"}} {self.completions_ok}',
                "# HELP process_start_time_seconds Start time of the process since the epoch.",
                "# TYPE process_start_time_seconds gauge",
                f"process_start_time_seconds {self.start_time:.3f}",
            ]
        return "\n".join(lines) + "\n"


class State:
    def __init__(self, cfg: Config, profile_id: str, profile_name: str) -> None:
        self.cfg = cfg
        self.profile_id = profile_id
        self.profile_name = profile_name
        self.ready = threading.Event()
        self.metrics = Metrics()
        self.created = int(time.time())


def _tokens(text: str) -> list[str]:
    return text.split()


def _completion_text(prompt: str, max_tokens: int) -> str:
    words = _tokens(prompt) or ["(empty)"]
    reply = ["[nim-standin]"] + words
    return " ".join(reply[: max(1, max_tokens)])


class Handler(BaseHTTPRequestHandler):
    server_version = "nim-standin/" + STANDIN_RELEASE
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on a kept-alive
    # connection the body then waits for the client's delayed ACK (~40 ms a request).
    disable_nagle_algorithm = True
    state: State  # set on the class before serving

    # -- plumbing -----------------------------------------------------------
    def log_message(self, fmt: str, *args) -> None:  # noqa: D401 - http.server API
        LOG.debug("%s - %s", self.address_string(), fmt % args)

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.state.metrics.count(self.path.split("?", 1)[0], code)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj) -> None:
        self._send(code, json.dumps(obj).encode(), "application/json")

    def _error(self, code: int, message: str, err_type: str = "invalid_request_error") -> None:
        self._json(code, {"object": "error", "message": message, "type": err_type, "code": code})

    def _read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return None

    # -- routes -------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        path = self.path.split("?", 1)[0]
        st = self.state
        if path == "/v1/health/live":
            self._json(200, {"object": "health.response", "message": "Service is live."})
        elif path == "/v1/health/ready":
            if st.ready.is_set():
                self._json(200, {"object": "health.response", "message": "Service is ready."})
            else:
                self._json(503, {"object": "health.response", "message": "Service is not ready."})
        elif path == "/v1/models":
            self._json(
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": st.cfg.model,
                            "object": "model",
                            "created": st.created,
                            "owned_by": "system",
                            "root": st.cfg.model,
                            "parent": None,
                            "max_model_len": st.cfg.max_model_len,
                        }
                    ],
                },
            )
        elif path == "/v1/metrics":
            self._send(
                200, st.metrics.render(st).encode(), "text/plain; version=0.0.4; charset=utf-8"
            )
        elif path == "/v1/version":
            self._json(
                200,
                {
                    "release": STANDIN_RELEASE,
                    "api": API_VERSION,
                    "standin": True,
                    "image_version": st.cfg.image_version,
                },
            )
        elif path == "/v1/metadata":
            self._json(
                200,
                {
                    "modelInfo": [{"modelUrl": "", "shortName": st.cfg.model}],
                    "profile": {"id": st.profile_id, "name": st.profile_name},
                    "standin": True,
                },
            )
        else:
            self._error(404, f"no route for GET {path}", "not_found_error")

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        path = self.path.split("?", 1)[0]
        if path not in ("/v1/chat/completions", "/v1/completions"):
            self._error(404, f"no route for POST {path}", "not_found_error")
            return
        body = self._read_json()
        if not isinstance(body, dict):
            self._error(400, "request body must be a JSON object")
            return
        st = self.state
        if not st.ready.is_set():
            self._error(503, "model is not ready", "service_unavailable")
            return
        model = body.get("model", st.cfg.model)
        if model != st.cfg.model:
            self._error(404, f"The model `{model}` does not exist.", "NotFoundError")
            return
        try:
            max_tokens = int(body.get("max_tokens") or 64)
        except (TypeError, ValueError):
            self._error(400, "max_tokens must be an integer")
            return
        if path == "/v1/chat/completions":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                self._error(400, "messages must be a non-empty list")
                return
            prompt_parts = [str(m.get("content", "")) for m in messages if isinstance(m, dict)]
            last_user = next(
                (
                    str(m.get("content", ""))
                    for m in reversed(messages)
                    if isinstance(m, dict) and m.get("role") == "user"
                ),
                prompt_parts[-1],
            )
            prompt_text = " ".join(prompt_parts)
            text = _completion_text(last_user, max_tokens)
        else:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                self._error(400, "prompt must be a string")
                return
            prompt_text = prompt
            text = _completion_text(prompt, max_tokens)

        with st.metrics.lock:
            st.metrics.running += 1
        try:
            if st.cfg.latency_s:
                time.sleep(st.cfg.latency_s)  # STANDIN_LATENCY_MS: a slow model
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]
            prompt_tokens = len(_tokens(prompt_text))
            completion_tokens = len(_tokens(text))
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            if path == "/v1/chat/completions":
                result = {
                    "id": "chatcmpl-" + digest,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": st.cfg.model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            else:
                result = {
                    "id": "cmpl-" + digest,
                    "object": "text_completion",
                    "created": int(time.time()),
                    "model": st.cfg.model,
                    "choices": [
                        {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
                    ],
                    "usage": usage,
                }
            if body.get("stream"):
                self._stream(result, path)
            else:
                self._json(200, result)
            with st.metrics.lock:
                st.metrics.prompt_tokens += prompt_tokens
                st.metrics.generation_tokens += completion_tokens
                st.metrics.completions_ok += 1
        finally:
            with st.metrics.lock:
                st.metrics.running -= 1

    def _stream(self, result: dict, path: str) -> None:
        """Server-sent events, one chunk per word, then [DONE]."""
        self.state.metrics.count(path, 200)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chat = path == "/v1/chat/completions"
        text = result["choices"][0]["message"]["content"] if chat else result["choices"][0]["text"]
        words = text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            choice = {"index": 0, "finish_reason": "stop" if i == len(words) - 1 else None}
            if chat:
                choice["delta"] = (
                    {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                )
                obj = "chat.completion.chunk"
            else:
                choice["text"] = piece
                obj = "text_completion"
            chunk = {
                "id": result["id"],
                "object": obj,
                "created": result["created"],
                "model": result["model"],
                "choices": [choice],
            }
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    do_HEAD = do_GET  # noqa: N815


def _setup_logging() -> None:
    level = getattr(logging, (_env("NIM_LOG_LEVEL", "INFO") or "INFO").upper(), logging.INFO)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        logging.Formatter(
            "%(levelname)s %(asctime)s.%(msecs)03d nim_standin] %(message)s", "%Y-%m-%d %H:%M:%S"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _loader(state: State) -> None:
    cfg = state.cfg
    if cfg.never_ready:
        LOG.warning(
            "STANDIN_NEVER_READY=1: the model will never finish loading; /v1/health/ready stays 503"
        )
        return
    if cfg.start_delay:
        time.sleep(cfg.start_delay)
    state.ready.set()
    LOG.info("Model %s loaded (stand-in, no weights); /v1/health/ready now returns 200", cfg.model)


def _crasher(seconds: float) -> None:
    time.sleep(seconds)
    LOG.error(
        "Engine core died unexpectedly (stand-in: STANDIN_CRASH_AFTER_S=%g); exiting with code 1",
        seconds,
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def main() -> int:
    _setup_logging()
    if not (os.environ.get("NGC_API_KEY") or "").strip():
        print(
            "ERROR: NGC_API_KEY is not set. Export your NGC API key and pass it to the container "
            "with -e NGC_API_KEY (nim-standin refuses to start without it).",
            file=sys.stderr,
        )
        return 1
    try:
        cfg = Config()
    except StartupError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1

    LOG.info(
        "NIM stand-in %s (image version %s) - a stand-in for an NVIDIA NIM LLM container, not NIM",
        STANDIN_RELEASE,
        cfg.image_version,
    )
    LOG.info("NGC_API_KEY: set (value not shown)")
    LOG.info(
        "NVIDIA_VISIBLE_DEVICES=%s",
        cfg.visible_devices if cfg.visible_devices is not None else "<unset>",
    )
    LOG.info(
        "NIM_KVCACHE_PERCENT=%s",
        cfg.kvcache_percent if cfg.kvcache_percent is not None else "<unset>",
    )
    LOG.info(
        "NIM_PASSTHROUGH_ARGS=%s",
        cfg.passthrough_args if cfg.passthrough_args is not None else "<unset>",
    )
    LOG.info("NIM_MAX_MODEL_LEN=%d", cfg.max_model_len)
    if cfg.requested_profile:
        LOG.info("NIM_MODEL_PROFILE=%s", cfg.requested_profile)
    if cfg.latency_s:
        LOG.info("STANDIN_LATENCY_MS=%g: every completion waits that long", cfg.latency_s * 1000)
    profile_id, profile_name = select_profile(cfg)
    LOG.info("Selected profile: %s (%s)", profile_id, profile_name)
    for key, value in _profile_tags(profile_name).items():
        LOG.info("Profile metadata: %s: %s", key, value)

    state = State(cfg, profile_id, profile_name)
    Handler.state = state
    try:
        httpd = ThreadingHTTPServer((cfg.host, cfg.port), Handler)
    except OSError as exc:
        LOG.error("cannot listen on %s:%d: %s", cfg.host, cfg.port, exc)
        return 1
    httpd.daemon_threads = True

    def _terminate(signum, _frame):
        LOG.info("Received signal %d, shutting down", signum)
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)

    LOG.info(
        "Serving model %s on http://%s:%d (live now, ready after load)",
        cfg.model,
        cfg.host,
        cfg.port,
    )
    threading.Thread(target=_loader, args=(state,), daemon=True, name="loader").start()
    if cfg.crash_after is not None:
        threading.Thread(
            target=_crasher, args=(cfg.crash_after,), daemon=True, name="crasher"
        ).start()
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()
    LOG.info("Stopped")
    return 0


def _profile_tags(name: str) -> dict[str, str]:
    parts = name.split("-")
    tags = {"llm_engine": parts[0]}
    for part in parts[1:]:
        if part.startswith("tp") and part[2:].isdigit():
            tags["tp"] = part[2:]
        elif part.startswith("pp") and part[2:].isdigit():
            tags["pp"] = part[2:]
        elif part in {"fp8", "bf16", "fp16", "nvfp4", "mxfp4"}:
            tags["precision"] = part
        elif part in {"latency", "throughput"}:
            tags["profile"] = part
        elif part in {"h100", "a100", "l40s", "h200", "b200"}:
            tags["gpu"] = part.upper()
    tags["feat_lora"] = "false"
    return tags


if __name__ == "__main__":
    sys.exit(main())
