"""Secrets written into the inventory by value: refused at validate, with their path only.

The inventory names where a secret comes from (`secrets: {NAME: {env: VAR}}`), never its
value. A value that reaches `env`, a pin's `env`, a runtime's arguments
(`nim.passthrough_args`, `triton.args`) or a plugin's `options` would be stored in every
revision, shown by `plan` and `apply`, and copied into container labels, so these are
checked by key name (`HF_TOKEN`), by flag name (`--api-key VALUE`) and by the shape of
well-known credentials (`nvapi-…`, `hf_…`). Messages never repeat the value. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from fleetctl.core.inventory import SECRET_KEY_RE, Inventory, Model

if TYPE_CHECKING:
    from fleetctl.core.yaml_input import Positions

Path_ = tuple[str | int, ...]

# Shapes of credentials that are never anything else.
CREDENTIAL_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an NVIDIA API key", re.compile(r"nvapi-[A-Za-z0-9_-]{8,}")),
    ("a Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{16,}")),
    ("an OpenAI-style API key", re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}")),
    ("an AWS access key", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.")),
    ("a password in a URL", re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@")),
)

# Words in a command-line flag that say its value is a credential. Whole words only:
# `--max-num-batched-tokens` and `--tokenizer` are not.
_SECRET_WORDS = {
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "credential",
    "credentials",
    "apikey",
    "passphrase",
}
_SECRET_PAIRS = {
    ("api", "key"),
    ("access", "key"),
    ("secret", "key"),
    ("private", "key"),
    ("auth", "key"),
}

BY_REFERENCE = "give it under 'secrets:' by reference ({env: NAME} or {file: PATH}), never by value"


def credential_shape(text: str) -> str | None:
    """What kind of credential `text` holds, if it holds a well-known one."""
    for what, pattern in CREDENTIAL_SHAPES:
        if pattern.search(text):
            return what
    return None


def _flag_names_secret(flag: str) -> bool:
    words = [w for w in re.split(r"[-_.]+", flag.lstrip("-").lower()) if w]
    if any(w in _SECRET_WORDS for w in words):
        return True
    return any(pair in _SECRET_PAIRS for pair in zip(words, words[1:]))


def secret_flags(args: list[str]) -> list[str]:
    """The flags in `args` that pass a credential as their value (`--api-key X`, `--token=X`)."""
    found: list[str] = []
    for i, arg in enumerate(args):
        if not arg.startswith("-"):
            continue
        flag, eq, value = arg.partition("=")
        if not _flag_names_secret(flag):
            continue
        has_value = bool(value) if eq else (i + 1 < len(args) and not args[i + 1].startswith("-"))
        if has_value:
            found.append(flag)
    return found


def split_args(text: str) -> list[str]:
    import shlex

    try:
        return shlex.split(text)
    except ValueError:  # unbalanced quotes: the words are still worth checking
        return text.split()


def strings_in(value: Any, path: Path_) -> Iterator[tuple[Path_, str]]:
    """(path, text) for every string in a JSON-like value, keys included."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, BaseModel):  # a runtime's validated block
        yield from strings_in(value.model_dump(mode="json", exclude_defaults=True), path)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield path + (str(k),), str(k)
            yield from strings_in(v, path + (str(k),))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings_in(v, path + (i,))


def _setting(block: Any, name: str) -> Any:
    """A field of a runtime block: its runtime's validated model, or the plain mapping a
    load without that runtime's catalog keeps."""
    return block.get(name) if isinstance(block, dict) else getattr(block, name, None)


def _runtime_blocks(
    m: Model, base: Path_, nim: Any, triton: Any
) -> Iterator[tuple[Path_, list[str]]]:
    if nim is not None and _setting(nim, "passthrough_args"):
        yield base + ("nim", "passthrough_args"), split_args(_setting(nim, "passthrough_args"))
    if triton is not None and _setting(triton, "args"):
        yield base + ("triton", "args"), list(_setting(triton, "args"))


def secret_problems(inv: Inventory, pos: Positions) -> list[str]:
    problems: list[str] = []

    def shaped(path: Path_, text: str) -> None:
        what = credential_shape(text)
        if what is not None:
            problems.append(pos.problem(path, f"holds what looks like {what}: {BY_REFERENCE}"))

    for i, m in enumerate(inv.models):
        base: Path_ = ("models", i)
        for key, value in m.env.items():
            shaped(base + ("env", key), value)
        for path, text in strings_in(m.options, base + ("options",)):
            shaped(path, text)
        scopes: list[tuple[Path_, Any, Any]] = [(base, m.nim, m.triton)]
        for j, pin in enumerate(m.pins):
            pbase = base + ("pins", j)
            for key, value in (pin.env or {}).items():
                if SECRET_KEY_RE.search(key):
                    problems.append(
                        pos.problem(
                            pbase + ("env", key),
                            f"{key} looks like a secret: {BY_REFERENCE}",
                            key=True,
                        )
                    )
                else:
                    shaped(pbase + ("env", key), value)
            scopes.append((pbase, pin.nim, pin.triton))
        for sbase, nim, triton in scopes:
            for path, args in _runtime_blocks(m, sbase, nim, triton):
                flags = secret_flags(args)
                if flags:
                    problems.append(
                        pos.problem(
                            path,
                            f"{flags[0]} passes a credential on the command line (kept in the state, shown by "
                            "`plan` and `docker inspect`): give it under 'secrets:' by reference and let the "
                            "server read it from its environment",
                        )
                    )
                    continue
                for arg in args:
                    if credential_shape(arg):
                        shaped(path, arg)
                        break
    return problems
