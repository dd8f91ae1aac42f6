"""Fixtures for the plugin tests: a clean plugin manager per test and fake installed plugins."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from monai_multifair.plugins import (
    ENV_DISABLE_AUTOLOAD,
    ENV_DISABLE_PLUGINS,
    ENV_PLUGINS,
    ENV_TRACE,
    get_plugin_manager,
)

ENV_VARS = (ENV_DISABLE_AUTOLOAD, ENV_DISABLE_PLUGINS, ENV_PLUGINS, ENV_TRACE)

# A plugin module offering one tabular encoder; {name} and {width} are filled in.
GOOD_PLUGIN = """
from torch import nn
from monai_multifair.plugins import EncoderSpec, hookimpl


class Scaled(nn.Module):
    def __init__(self, in_features, scale=2.0):
        super().__init__()
        self.linear = nn.Linear(in_features, {width})
        self.scale = scale
        self.out_features = {width}

    def forward(self, x):
        return self.scale * self.linear(x)


@hookimpl
def multifair_encoders():
    return [EncoderSpec("{name}", "tabular", Scaled, "fake encoder {name}")]
"""


@pytest.fixture(autouse=True)
def rebuild_plugin_manager_after() -> Iterator[None]:
    """After each test, once ``monkeypatch`` has restored ``sys.path`` and the environment (this fixture
    is set up before it, so torn down after it), forget fake plugin modules and rebuild the manager."""
    modules_before = set(sys.modules)
    yield
    for name in set(sys.modules) - modules_before:
        if name.startswith("fakeplug_"):
            del sys.modules[name]
    get_plugin_manager(reload=True)


@pytest.fixture(autouse=True)
def clean_plugin_env(rebuild_plugin_manager_after: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without MULTIFAIR_* variables and with a freshly discovered manager."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    get_plugin_manager(reload=True)


@pytest.fixture
def unique() -> Callable[[str], str]:
    """A fresh module/distribution name per call, so imports never collide across tests."""
    return lambda prefix="fakeplug": f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def install_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write ``<dist>-<version>.dist-info`` (METADATA + entry_points.txt) and plugin modules under a
    folder put on ``sys.path``: importlib.metadata then sees an installed distribution."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def install(
        dist: str,
        entry_points: Mapping[str, str],
        modules: Mapping[str, str] = {},
        version: str = "1.2.3",
        group: str = "monai_multifair.encoders",
    ) -> Path:
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "\n".join(f"{name} = {value}" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[{group}]\n{lines}\n")
        for module, source in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
        return info

    return install


@pytest.fixture
def good_plugin() -> Callable[..., str]:
    """Source of a plugin module offering the tabular encoder ``name`` (``Linear(F, width)`` times
    ``scale``)."""
    return lambda name, width=3: GOOD_PLUGIN.replace("{name}", name).replace("{width}", str(width))
