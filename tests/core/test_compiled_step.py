"""``config.compile``: the compiled modulator step against the eager one (the reference).

The slow tests compile with the real backend (``torch.compile``, inductor: C++ on the CPU) and check,
step by step, that statistics, the auxiliary loss, every gradient, the guide heads and the state
buffers agree with an eager twin within 1e-6, across a smaller last batch, a change of batch size,
a missing modality and the gate switching. The fast tests cover the switch's behaviour and check that
the graphs ``torch.compile`` captures hold no host synchronisation.
"""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from monai_multifair import DualLevelGradientModulator, MultiFairConfig
from monai_multifair.core import modulator as modulator_module
from monai_multifair.core.compiled_step import CompiledStep, compile_enabled
from monai_multifair.core.sync import SYNC_OPS
from monai_multifair.errors import MultiFairError

TOL = 1e-6


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    """Each test compiles from scratch (no cache entries or recompile counts left by another test)."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class ThreeTower(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.Linear(6, 8), nn.ReLU())
        self.text = nn.Sequential(nn.Linear(4, 5), nn.ReLU())
        self.table = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(17, 12), nn.ReLU(), nn.Linear(12, num_classes))

    def forward(self, x):
        return self.head(torch.cat([self.image(x[0]), self.text(x[1]), self.table(x[2])], dim=1))


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason="needs a CUDA device (run by benchmarks/gpu_suite.sh)"
        ),
    ),
]


def _arm(num_classes: int, setting: str, device: str = "cpu", **config):
    """``(net, modulator, optimizer)``, the same weights for every call."""
    torch.manual_seed(0)
    net = ThreeTower(num_classes).to(device)
    mod = DualLevelGradientModulator(
        {"image": net.image, "text": net.text, "table": net.table},
        num_classes=num_classes,
        num_groups=3,
        fused_head=net.head[-1],
        config=MultiFairConfig(**{**config, "validate_args": False, "compile": setting}),
        feature_dims={"image": 8, "text": 5, "table": 4},
    ).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    mod.attach_optimizer(opt)  # modulate="update" scales the encoder updates (no-op for "gradient")
    return net, mod, opt


def _twins(num_classes: int, device: str, **config):
    """An eager and a compiled modulator on two identical networks."""
    return {setting: _arm(num_classes, setting, device, **config) for setting in ("off", "on")}


def _batch(gen, n: int, num_classes: int, same_groups: bool = False):
    """Random inputs; with ``same_groups`` the three groups hold the same samples (equal fused AUCs)."""
    if same_groups:
        block = _batch(gen, n // 3, num_classes)
        inputs = tuple(x.repeat(3, 1) for x in block[0])
        return inputs, block[1].repeat(3), torch.arange(3).repeat_interleave(n // 3)
    labels = torch.arange(n) % num_classes
    inputs = tuple(torch.randn(n, d, generator=gen) + 0.5 * labels.unsqueeze(1) for d in (6, 4, 3))
    return inputs, labels, torch.randint(0, 3, (n,), generator=gen)


def _step(net, mod, opt, batch, present):
    inputs, labels, groups = batch
    logits = net(inputs)
    aux = mod(logits, labels, groups, present=present)
    opt.zero_grad(set_to_none=True)
    (F.cross_entropy(logits, labels) + aux).backward()
    grads = {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}
    opt.step()
    return aux.detach(), mod.stats(), grads


def _assert_same(eager, compiled, what: str) -> None:
    assert eager.shape == compiled.shape and eager.dtype == compiled.dtype, what
    assert torch.equal(eager.isnan(), compiled.isnan()), what
    torch.testing.assert_close(compiled, eager, rtol=0, atol=TOL, equal_nan=True, msg=what)


def _run_and_compare(arms, plan, num_classes, device):
    gen = torch.Generator().manual_seed(7)
    gates = []
    for t, (size, same_groups, presence) in enumerate(plan):
        inputs, labels, groups = _batch(gen, size, num_classes, same_groups)
        present = None
        if presence:
            present = torch.rand(size, 3, generator=gen) > 0.25
            present[groups == 1, 2] = False  # the table is missing for a whole group
            present = present.to(device)
        batch = (tuple(x.to(device) for x in inputs), labels.to(device), groups.to(device))
        results = {setting: _step(*arms[setting], batch, present) for setting in arms}
        (aux_e, stats_e, grads_e), (aux_c, stats_c, grads_c) = results["off"], results["on"]
        _assert_same(aux_e, aux_c, f"step {t}: aux")
        assert stats_e.keys() == stats_c.keys()
        for key in stats_e:
            _assert_same(stats_e[key], stats_c[key], f"step {t}: stats[{key!r}]")
        assert grads_e.keys() == grads_c.keys()
        for key in grads_e:
            _assert_same(grads_e[key], grads_c[key], f"step {t}: grad of {key}")
        mod_e, mod_c = arms["off"][1], arms["on"][1]
        for (key, a), (_, b) in zip(mod_e.state_dict().items(), mod_c.state_dict().items()):
            if isinstance(a, torch.Tensor):
                _assert_same(a.float(), b.float(), f"step {t}: {key}")
        gates.append(float(stats_c["gate"]))
    return gates


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_compiled_step_equals_eager_binary_default(device):
    """Default preset (routing factor, shortfall loss), binary: the gate opens and closes, a smaller
    batch and another batch size run eagerly inside the compiled modulator, then the compiled step
    serves again."""
    arms = _twins(2, device, gate_smoothing=False, fairness_threshold=0.05)
    plan = [
        (24, False, False),
        (24, True, False),
        (24, False, False),
        (10, False, False),
        (24, False, False),
        (18, False, False),
    ]
    gates = _run_and_compare(arms, plan, 2, device)
    assert 0.0 in gates and 1.0 in gates, gates  # the gate switched, in both directions covered
    steps = (arms["on"][1]._guide_gradient_step, arms["on"][1]._statistics_step)
    assert all(s.compiled_calls == 4 and s.eager_calls == 2 for s in steps)
    assert all(
        s.eager_calls == 6 for s in (arms["off"][1]._guide_gradient_step, arms["off"][1]._statistics_step)
    )


@pytest.mark.slow
@pytest.mark.parametrize("modulate", ["gradient", "update"])
@pytest.mark.parametrize("device", DEVICES)
def test_compiled_step_equals_eager_multiclass_paper_with_missing_modality(device, modulate):
    """``paper`` preset (modality factor, dispersion loss), three classes, a presence mask from the
    first step (so the compiled graph is the one with a missing modality), then a smaller last batch;
    in both modulation modes (``update``: the magnitude ``c_m`` and the relative per-sample weights)."""
    arms = _twins(3, device, preset="paper", fairness_threshold=0.02, modulate=modulate)
    plan = [(30, False, True), (30, False, True), (30, False, True), (12, False, True)]
    gates = _run_and_compare(arms, plan, 3, device)
    assert 1.0 in gates
    if modulate == "update":
        assert "update_scale" in arms["on"][1].stats()
        for (name, a), b in zip(arms["off"][0].named_parameters(), arms["on"][0].parameters()):
            _assert_same(a.detach(), b.detach(), f"parameter {name} after the scaled updates")
    stats = arms["on"][1]._statistics_step
    assert stats.compiled_calls == 3 and stats.eager_calls == 1


def _record_graphs(fn, args):
    """Compile ``fn`` with a backend that keeps the ATen graphs (no code generation) and run it."""
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.aot_autograd import make_boxed_func

    graphs = []

    def keep(gm, example_inputs):
        graphs.append(gm)
        return make_boxed_func(gm.forward)

    torch.compile(fn, backend=aot_autograd(fw_compiler=keep), fullgraph=True, dynamic=False)(*args)
    return graphs


@pytest.mark.parametrize("modulate", ["gradient", "update"])
@pytest.mark.parametrize("with_presence", [False, True])
def test_captured_graphs_hold_no_host_sync(with_presence, modulate):
    """The two functions ``compile`` captures trace as whole graphs (``fullgraph``) whose ATen ops include
    no host read (the ``HostSyncCounter`` list) and no copy to the CPU: a compiled step cannot
    synchronise inside them. (The eager code around them is covered by test_host_sync.py; on CUDA the
    GPU suite runs CUDA's own detector over a compiled step.)"""
    net, mod, opt = _arm(2, "off", fairness_threshold=1e-3, modulate=modulate)
    captured = {}
    for step in (mod._guide_gradient_step, mod._statistics_step):
        original = step.fn

        def recording(*args, step=step, original=original):
            captured[step.name] = args
            return original(*args)

        step.fn = recording
    gen = torch.Generator().manual_seed(3)
    batch = _batch(gen, 24, 2)
    present = torch.rand(24, 3, generator=gen) > 0.2 if with_presence else None
    _step(net, mod, opt, batch, present)
    assert set(captured) == {"guide step", "statistics step"}
    for name, fn in (
        ("guide step", modulator_module._guide_gradients),
        ("statistics step", modulator_module._statistics),
    ):
        with torch.no_grad():
            graphs = _record_graphs(fn, captured[name])
        assert graphs, name
        for gm in graphs:
            for node in gm.graph.nodes:
                if node.op != "call_function":
                    continue
                assert node.target not in SYNC_OPS, (name, node.target)
                device = node.kwargs.get("device")
                assert device is None or torch.device(device).type == "cpu", (name, node.format_node())


def _graph_break(x):
    torch._dynamo.graph_break()  # cannot be captured whole: compiling with fullgraph=True fails
    return x + 1


def test_compile_on_failure_names_the_switch():
    step = CompiledStep(_graph_break, "statistics step", "on")
    with pytest.raises(
        MultiFairError, match=r"`compile`='on' but compiling the modulator's statistics step failed"
    ):
        step(torch.device("cpu"), torch.zeros(2))


def test_compile_auto_failure_logs_and_runs_eagerly(caplog):
    step = CompiledStep(_graph_break, "statistics step", "auto")
    with caplog.at_level(logging.WARNING, logger="monai_multifair"):
        out = step(torch.device("cuda"), torch.zeros(2))  # auto compiles for CUDA devices only
    assert torch.equal(out, torch.ones(2))
    assert "compiling the modulator's statistics step failed" in caplog.text
    assert "falling back to the eager step (compile='auto')" in caplog.text
    assert step.failed and step.eager_calls == 1
    assert torch.equal(step(torch.device("cuda"), torch.ones(2)), torch.full((2,), 2.0))
    assert step.eager_calls == 2 and step.compiled_calls == 0


@pytest.mark.parametrize(
    ("setting", "device", "expected"),
    [("auto", "cpu", False), ("auto", "cuda", True), ("on", "cpu", True), ("off", "cuda", False)],
)
def test_compile_enabled(setting, device, expected):
    assert compile_enabled(setting, torch.device(device)) is expected


def test_auto_on_cpu_never_calls_the_compiler(monkeypatch):
    def no_compile(*args, **kwargs):
        raise AssertionError("torch.compile called")

    monkeypatch.setattr(torch, "compile", no_compile)
    net, mod, opt = _arm(2, "auto")
    _step(net, mod, opt, _batch(torch.Generator().manual_seed(0), 12, 2), None)
    assert mod._statistics_step.eager_calls == 1 and mod._statistics_step.compiled_calls == 0
