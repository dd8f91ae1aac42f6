"""Discovery of installed plugins through the entry-point group, and what happens when one is broken."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest
import torch
import yaml

from monai_multifair.errors import MultiFairError
from monai_multifair.plugins import (
    BUILTIN_PLUGINS,
    ENTRY_POINT_GROUP,
    ENV_DISABLE_AUTOLOAD,
    ENV_DISABLE_PLUGINS,
    ENV_PLUGINS,
    ENV_TRACE,
    PluginLoadWarning,
    create_encoder,
    encoder_conflicts,
    get_plugin_manager,
    list_encoders,
    list_plugins,
    plugin_load_failures,
)


def test_fake_installed_plugin_is_discovered_and_usable_from_a_config(install_fake, good_plugin, unique):
    module, encoder = unique(), unique("fake-enc")
    install_fake("acme-encoders", {"acme": module}, {module: good_plugin(encoder, width=4)}, version="2.0.1")
    get_plugin_manager(reload=True)

    plugins = {info.name: info for info in list_plugins()}
    assert plugins["acme"].distribution == "acme-encoders"
    assert plugins["acme"].version == "2.0.1"
    assert plugins["acme"].source == f"entry point acme = {module}"
    assert plugins["acme"].hooks == ("multifair_encoders",)
    assert plugins["acme"].encoders == (encoder,)
    spec = {s.name: s for s in list_encoders("tabular")}[encoder]
    assert (spec.plugin, spec.modality, spec.description) == ("acme", "tabular", f"fake encoder {encoder}")
    assert plugin_load_failures() == []

    # the options of a config's encoder entry go straight to the factory
    config = yaml.safe_load(f"name: {encoder}\nin_features: 5\nscale: 3.0\n")
    enc = create_encoder(config.pop("name"), **config)
    x = torch.randn(2, 5)
    assert enc.out_features == 4
    torch.testing.assert_close(enc(x), 3.0 * enc.linear(x))


def test_builtins_are_registered_by_module_name_and_the_package_declares_no_entry_point():
    declared = [
        ep
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        if ep.value.startswith("monai_multifair.")
    ]
    assert declared == []  # installed metadata: built-ins are not entry points
    infos = {info.name: info for info in list_plugins()}
    assert set(BUILTIN_PLUGINS) <= set(infos) and all(infos[name].builtin for name in BUILTIN_PLUGINS)
    assert infos["monai_multifair.methods.group_dro"].methods == ("groupdro",)
    assert infos["monai_multifair.data.cohort"].data_sources == ("synthetic",)
    assert plugin_load_failures() == []


def test_the_plugin_manager_imports_none_of_the_modules_it_registers():
    """The manager is a leaf: a fresh interpreter that imports it has loaded no network, method or data module."""
    code = (
        "import sys, monai_multifair.plugins.manager as m; "
        "print(sorted(n for n in sys.modules if n.startswith(('monai_multifair.networks', "
        "'monai_multifair.methods', 'monai_multifair.data', 'monai_multifair.config'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_broken_plugin_is_reported_and_the_others_keep_working(install_fake, good_plugin, unique):
    good, broken = unique(), unique()
    encoder = unique("fake-enc")
    install_fake("good-dist", {"good": good}, {good: good_plugin(encoder)})
    install_fake(
        "broken-dist", {"broken": broken}, {broken: "import not_a_module_anywhere_xyz\n"}, version="0.3"
    )
    get_plugin_manager(reload=True)

    (failure,) = plugin_load_failures()
    assert (failure.plugin, failure.stage, failure.distribution, failure.version) == (
        "broken",
        "import",
        "broken-dist",
        "0.3",
    )
    assert failure.error == "ModuleNotFoundError: No module named 'not_a_module_anywhere_xyz'"
    assert "broken" not in [info.name for info in list_plugins()]
    with pytest.warns(PluginLoadWarning, match="plugin 'broken'.*not_a_module_anywhere_xyz"):
        assert create_encoder(encoder, in_features=2).out_features == 3
    # an unknown name points at the failed plugin, since the encoder may live there
    with pytest.raises(MultiFairError, match="plugins that failed to load: plugin 'broken'"):
        create_encoder("from-the-broken-plugin")


def test_entry_point_to_missing_attribute_is_an_import_failure(install_fake, good_plugin, unique):
    module = unique()
    install_fake("attr-dist", {"attr": f"{module}:no_such_object"}, {module: good_plugin(unique("e"))})
    get_plugin_manager(reload=True)
    (failure,) = plugin_load_failures()
    assert failure.plugin == "attr" and failure.stage == "import"
    assert failure.error.startswith("AttributeError:") and "no_such_object" in failure.error


def test_plugin_without_hookimpl_and_with_misspelt_hook_are_refused(install_fake, unique):
    plain, misspelt = unique(), unique()
    install_fake(
        "bad-dist",
        {"plain": plain, "misspelt": misspelt},
        {
            plain: "def multifair_encoders():\n    return []\n",  # forgot @hookimpl
            misspelt: (
                "from monai_multifair.plugins import hookimpl\n\n"
                "@hookimpl\ndef multifair_encoder():\n    return []\n"
            ),
        },
    )
    get_plugin_manager(reload=True)
    failures = {f.plugin: f for f in plugin_load_failures()}
    assert set(failures) == {"plain", "misspelt"}
    assert "defines no hook implementation" in failures["plain"].error
    assert (
        "unknown hook 'multifair_encoder' (did you mean 'multifair_encoders'?)" in failures["misspelt"].error
    )
    registered = [info.name for info in list_plugins()]
    assert "plain" not in registered and "misspelt" not in registered


def test_hook_that_raises_or_returns_garbage_is_recorded(install_fake, good_plugin, unique):
    raising, garbage, good = unique(), unique(), unique()
    encoder = unique("fake-enc")
    hook = "from monai_multifair.plugins import hookimpl\n\n@hookimpl\ndef multifair_encoders():\n"
    install_fake(
        "hooks-dist",
        {"raising": raising, "garbage": garbage, "good": good},
        {
            raising: hook + "    raise RuntimeError('weights missing')\n",
            garbage: hook + "    return ['not a spec']\n",
            good: good_plugin(encoder),
        },
    )
    get_plugin_manager(reload=True)
    failures = {f.plugin: f for f in plugin_load_failures()}
    assert failures["raising"].stage == "hook"
    assert failures["raising"].error == "RuntimeError: weights missing"
    assert failures["garbage"].stage == "hook"
    assert "must return a list of EncoderSpec" in failures["garbage"].error
    assert encoder in [s.name for s in list_encoders()]


def test_duplicate_encoder_name_across_plugins_names_both(install_fake, good_plugin, unique):
    first, second = unique(), unique()
    encoder = unique("fake-enc")
    install_fake("first-dist", {"first": first}, {first: good_plugin(encoder)})
    install_fake("second-dist", {"second": second}, {second: good_plugin(encoder, width=5)})
    get_plugin_manager(reload=True)

    assert encoder_conflicts() == {encoder: ("first", "second")}
    assert encoder not in [s.name for s in list_encoders()]
    with pytest.raises(
        MultiFairError, match=f"encoder name '{encoder}' is registered by more than one plugin: "
    ):
        create_encoder(encoder, in_features=2)
    with pytest.raises(MultiFairError, match="'first' and 'second'"):
        create_encoder(encoder, in_features=2)


def test_disabling_one_plugin_resolves_a_conflict(install_fake, good_plugin, unique, monkeypatch):
    first, second = unique(), unique()
    encoder = unique("fake-enc")
    install_fake("first-dist", {"first": first}, {first: good_plugin(encoder)})
    install_fake("second-dist", {"second": second}, {second: good_plugin(encoder, width=5)})
    monkeypatch.setenv(ENV_DISABLE_PLUGINS, "first")
    get_plugin_manager(reload=True)
    assert encoder_conflicts() == {}
    assert create_encoder(encoder, in_features=2).out_features == 5


def test_plugin_reusing_a_builtin_name_is_a_conflict(install_fake, good_plugin, unique):
    module = unique()
    install_fake("clash-dist", {"clash": module}, {module: good_plugin("tabular-mlp")})
    get_plugin_manager(reload=True)
    assert encoder_conflicts() == {"tabular-mlp": ("clash", "monai_multifair.networks.encoders.plugin")}
    with pytest.raises(MultiFairError, match="'clash' and 'monai_multifair.networks.encoders.plugin'"):
        create_encoder("tabular-mlp", in_features=3)


def test_two_distributions_with_the_same_plugin_name(install_fake, good_plugin, unique):
    first, second = unique(), unique()
    install_fake("one-dist", {"same": first}, {first: good_plugin(unique("e"))})
    install_fake("two-dist", {"same": second}, {second: good_plugin(unique("e"))})
    get_plugin_manager(reload=True)
    (failure,) = plugin_load_failures()
    assert failure.plugin == "same" and failure.stage == "register"
    assert "already registered" in failure.error


def test_autoload_switched_off_keeps_builtins_and_skips_installed(
    install_fake, good_plugin, unique, monkeypatch
):
    module = unique()
    encoder = unique("fake-enc")
    install_fake("acme-encoders", {"acme": module}, {module: good_plugin(encoder)})
    monkeypatch.setenv(ENV_DISABLE_AUTOLOAD, "1")
    get_plugin_manager(reload=True)
    assert [info.name for info in list_plugins()] == sorted(BUILTIN_PLUGINS)
    assert encoder not in [s.name for s in list_encoders()]
    assert create_encoder("tabular-mlp", in_features=3, hidden_dims=(4,)).out_features == 4

    # modules named in MULTIFAIR_PLUGINS load even with auto-loading off
    monkeypatch.setenv(ENV_PLUGINS, module)
    get_plugin_manager(reload=True)
    info = {i.name: i for i in list_plugins()}[module]
    assert (info.source, info.distribution) == (f"MULTIFAIR_PLUGINS {module}", None)
    assert create_encoder(encoder, in_features=2).out_features == 3


def test_missing_module_in_env_plugins_is_reported(monkeypatch):
    monkeypatch.setenv(ENV_PLUGINS, "fakeplug_not_there")
    get_plugin_manager(reload=True)
    (failure,) = plugin_load_failures()
    assert failure.plugin == "fakeplug_not_there"
    assert failure.error == "ModuleNotFoundError: No module named 'fakeplug_not_there'"


def test_bad_env_flag_value_is_an_error(monkeypatch):
    monkeypatch.setenv(ENV_DISABLE_AUTOLOAD, "maybe")
    with pytest.raises(MultiFairError, match="MULTIFAIR_DISABLE_PLUGIN_AUTOLOAD .* got 'maybe'"):
        get_plugin_manager(reload=True)


def test_trace_env_writes_hook_calls_to_stderr(monkeypatch, capsys):
    monkeypatch.setenv(ENV_TRACE, "1")
    get_plugin_manager(reload=True)
    list_encoders()
    err = capsys.readouterr().err
    assert "multifair_encoders [hook]" in err
    assert "finish multifair_encoders -->" in err and "tabular-mlp" in err


def test_registering_in_code_rebuilds_the_registry():
    from monai_multifair.plugins import EncoderSpec, hookimpl

    class Plugin:
        @hookimpl
        def multifair_encoders(self):
            return [EncoderSpec("in-code-mlp", "tabular", lambda: torch.nn.Identity(), "")]

    pm = get_plugin_manager()
    assert "in-code-mlp" not in [s.name for s in list_encoders()]
    plugin = Plugin()
    pm.register(plugin, name="in-code")
    assert [s.plugin for s in list_encoders() if s.name == "in-code-mlp"] == ["in-code"]
    assert {i.name: i.source for i in list_plugins()}["in-code"] == "registered in code"
    pm.unregister(plugin)
    assert "in-code-mlp" not in [s.name for s in list_encoders()]
