"""The tiny run config shared by the engine tests (``tiny.yaml``; the CLI tests use the same file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monai_multifair.config import RunConfig, load_config

TINY_YAML = Path(__file__).with_name("tiny.yaml")


@pytest.fixture(scope="session")
def tiny_config():
    """``tiny_config(*overrides) -> RunConfig`` from ``tiny.yaml``."""

    def make(*overrides: str) -> RunConfig:
        return load_config(TINY_YAML, list(overrides))

    return make
