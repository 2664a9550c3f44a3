"""Secrets given by value are refused at validate, by key, flag and shape, and by being a
value of one of the inventory's own references; scrubbing survives split lines."""

from __future__ import annotations

import pytest

from fleetctl.core.secret_checks import credential_shape, secret_flags, split_args
from fleetctl.errors import ExitCode, InventoryError
from fleetctl.ops.rollout import scrub
from fleetctl.ops.secrets import refuse_secret_values
from fleetctl.runtimes.inventory import load_text

HOST = "hosts:\n  - {name: h1, simulated: true, gpus: {count: 2, memory_gb: 80}}\n"
PIN = "{version: '0', image: i, customers: [acme]%s}"


def inventory(model_extra: str = "", pin_extra: str | None = None) -> str:
    pins = f", pins: [{PIN % pin_extra}]" if pin_extra is not None else ""
    return (
        HOST
        + "models:\n  - {name: m, version: '1', runtime: nim, image: i, gpu_memory_gb: 4%s%s}\n"
        % (model_extra, pins)
    )


def problems(text: str) -> list[str]:
    with pytest.raises(InventoryError) as exc:
        load_text(text, "f.yaml")
    assert exc.value.exit_code == ExitCode.INVENTORY
    return exc.value.problems


HF = "hf_" + "a1B2c3D4e5F6g7H8i9J0"
NGC = "nvapi-" + "Zx9" * 8


@pytest.mark.parametrize(
    ("model_extra", "pin_extra", "path"),
    [
        ("", f", env: {{HF_TOKEN: {HF}}}", "models[0].pins[0].env.HF_TOKEN"),  # by name, in a pin
        ("", ", env: {DOWNLOAD: %s}" % HF, "models[0].pins[0].env.DOWNLOAD"),  # by shape, in a pin
        (f", env: {{DOWNLOAD: {NGC}}}", None, "models[0].env.DOWNLOAD"),  # by shape, in the model
        (f", nim: {{passthrough_args: '--api-key {NGC}'}}", None, "models[0].nim.passthrough_args"),
        (", nim: {passthrough_args: '--hf-token=abc123'}", None, "models[0].nim.passthrough_args"),
        (
            "",
            ", nim: {passthrough_args: '--password hunter2'}",
            "models[0].pins[0].nim.passthrough_args",
        ),
        (
            ", triton: {model_repository: /m, args: ['--auth-token', 'x']}",
            None,
            "models[0].triton.args",
        ),
        (f", triton: {{model_repository: /m, args: ['--x={HF}']}}", None, "models[0].triton.args"),
        (
            ", options: {download: {url: 'https://me:pw@example.com/x'}}",
            None,
            "models[0].options.download.url",
        ),
    ],
)
def test_secrets_by_value_are_refused_with_their_path_and_never_echoed(
    model_extra: str, pin_extra: str | None, path: str
) -> None:
    (p,) = problems(inventory(model_extra, pin_extra))
    assert f": {path}: " in p and "by reference" in p
    for value in (HF, NGC, "abc123", "hunter2", "me:pw"):
        assert value not in p


def test_arguments_that_only_mention_tokens_pass() -> None:
    load_text(
        inventory(
            ", nim: {passthrough_args: '--max-num-batched-tokens 8192 --tokenizer mistral --api-key-file'}"
        )
    )
    assert secret_flags(["--max-num-batched-tokens", "8192", "--tokenizer", "x", "--no-auth"]) == []
    assert secret_flags(["--api-key", "--verbose"]) == []  # a flag without a value holds nothing
    assert secret_flags(["--api-key", "k"]) == ["--api-key"] and secret_flags(
        ["--access_key=k"]
    ) == ["--access_key"]


def test_unbalanced_quotes_are_still_checked() -> None:
    assert split_args("--x 'unclosed --token abc") == ["--x", "'unclosed", "--token", "abc"]


@pytest.mark.parametrize(
    "text",
    [
        "nvapi-abcdefghijkl",
        "hf_abcdefghijklmnopqr",
        "sk-abcdefghijklmnopqrstu",
        "ghp_" + "a" * 30,
        "AKIAABCDEFGHIJKLMNOP",
        "-----BEGIN RSA PRIVATE KEY-----",
        "postgres://u:secret@db/x",
    ],
)
def test_credential_shapes(text: str) -> None:
    assert credential_shape(f"prefix {text} suffix") is not None


@pytest.mark.parametrize(
    "text", ["info", "/srv/models", "https://example.com/x", "sk-1", "nvapi", "hf_short"]
)
def test_ordinary_values_are_not_credentials(text: str) -> None:
    assert credential_shape(text) is None


def test_a_value_of_the_inventorys_own_secret_is_refused_wherever_it_stands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NGC_API_KEY", "plain-looking-key-42")
    monkeypatch.setenv("HF_TOKEN", "another-one-77")
    text = inventory(
        ", secrets: {HF_TOKEN: {env: HF_TOKEN}}, nim: {passthrough_args: '--download plain-looking-key-42'}",
        ", env: {MIRROR: another-one-77}",
    )
    loaded = load_text(text, "f.yaml")  # no shape, no name: the loader cannot know
    with pytest.raises(InventoryError) as exc:
        refuse_secret_values(loaded)
    paths = sorted(p.split(": ")[1] for p in exc.value.problems)
    assert paths == ["models[0].nim.passthrough_args", "models[0].pins[0].env.MIRROR"]
    assert all(
        "plain-looking-key-42" not in p and "another-one-77" not in p for p in exc.value.problems
    )
    assert "env:NGC_API_KEY" in " ".join(exc.value.problems) and "env:HF_TOKEN" in " ".join(
        exc.value.problems
    )


def test_without_the_secrets_in_the_environment_nothing_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NGC_API_KEY", raising=False)
    refuse_secret_values(load_text(inventory(", nim: {passthrough_args: '--download x'}")))


KEY = "nvapi-CANARY-7f3e1d9a2b"


@pytest.mark.parametrize(
    "text",
    [
        f"key={KEY} ok",
        "key=nvapi-CAN\nARY-7f3e1d9a2b ok",  # a program broke the line
        "key=nvapi-CAN\n    ARY-7f3e\r\n1d9a2b ok",  # twice, with indentation and CRLF
        "ARY-7f3e1d9a2b\nnext line",  # a log tail that starts inside it
        "last line: nvapi-CANARY",  # ... or ends inside it
    ],
)
def test_scrub_finds_the_value_split_over_lines_or_cut_at_an_edge(text: str) -> None:
    out = scrub(text, [KEY])
    assert "***" in out
    joined = out.replace("\n", "").replace("\r", "").replace(" ", "")
    assert KEY not in joined and "CANARY" not in out and "7f3e" not in out


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = "port 20000 ready\nnv\nselected profile tp1"
    assert scrub(text, [KEY]) == text
    assert scrub("a short one: abc", ["abc"]) == "a short one: ***"
