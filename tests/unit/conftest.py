"""Shared by the unit tests: this folder on sys.path, so that test modules can import
their own helper modules (health_kit.py) under --import-mode=importlib."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
