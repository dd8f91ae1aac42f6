"""A whole modulated step performs no host synchronisation when ``validate_args`` is off."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from monai_multifair import DualLevelGradientModulator, MultiFairConfig
from monai_multifair.core.sync import HostSyncCounter, HostSyncError


def NoHostSync() -> HostSyncCounter:
    """Fails on any op that reads a device value back to the host (torch.optim internals exempt)."""
    return HostSyncCounter(raise_on_sync=True)


class TwoTower(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.Linear(6, 8), nn.ReLU())
        self.text = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 2))

    def forward(self, image, text):
        return self.head(torch.cat([self.image(image), self.text(text)], dim=1))


def _step(net, mod, opt, batch, present=None):
    image, text, labels, groups = batch
    logits = net(image, text)
    aux = mod(logits, labels, groups, present=present)
    loss = F.cross_entropy(logits, labels) + aux
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return mod.stats()


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"group_factor_rule": "routing", "fairness_loss": "shortfall", "coefficient_rule": "signed"},
        {"preset": "paper", "gate_smoothing": False, "coefficient_ema_decay": 0.9, "guide_optimizer": "sgd"},
        {"modulate": "update"},  # the optimizer hooks that scale the encoder updates included
    ],
)
@pytest.mark.parametrize("with_presence", [False, True])
def test_modulated_step_has_no_host_sync(overrides, with_presence):
    torch.manual_seed(0)
    net = TwoTower()
    config = MultiFairConfig(**{"validate_args": False, "fairness_threshold": 1e-3, **overrides})
    mod = DualLevelGradientModulator(
        {"image": net.image, "text": net.text},
        num_classes=2,
        num_groups=3,
        fused_head=net.head[-1],
        config=config,
        feature_dims={"image": 8, "text": 8},
    )
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    mod.attach_optimizer(opt)  # no-op unless modulate="update"
    batch = (torch.randn(32, 6), torch.randn(32, 4), torch.randint(0, 2, (32,)), torch.randint(0, 3, (32,)))
    present = torch.rand(32, 2) > 0.2 if with_presence else None
    _step(net, mod, opt, batch, present)  # warm-up: lazily created optimizer state
    mode = NoHostSync()
    with mode:
        stats = _step(net, mod, opt, batch, present)
        stats = _step(net, mod, opt, batch, present)
    # The step really modulated (and so ran every part under the mode).
    assert stats["gate"].item() == 1.0
    assert set(stats) >= {"modality_scale", "group_factor", "guide_auc", "fused_group_auc"}
    assert stats["fairness_loss"].item() > 0


def test_the_detector_catches_a_sync():
    """The mode above must be able to fail: ``.item()`` and ``bool(tensor)`` are caught."""
    x = torch.randn(4)
    with pytest.raises(HostSyncError, match="host synchronisation"), NoHostSync():
        x.sum().item()
    with pytest.raises(HostSyncError, match="host synchronisation"), NoHostSync():
        bool((x > 0).any())
    with pytest.raises(HostSyncError, match="host synchronisation"), NoHostSync():
        x[x > 0]


def test_validate_args_on_does_sync():
    """With ``validate_args`` on the value checks read values back (documented cost)."""
    torch.manual_seed(0)
    net = TwoTower()
    mod = DualLevelGradientModulator(
        {"image": net.image, "text": net.text},
        2,
        3,
        fused_head=net.head[-1],
        feature_dims={"image": 8, "text": 8},
    )
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    batch = (torch.randn(16, 6), torch.randn(16, 4), torch.randint(0, 2, (16,)), torch.randint(0, 3, (16,)))
    with pytest.raises(HostSyncError, match="host synchronisation"), NoHostSync():
        _step(net, mod, opt, batch)


def _cuda_syncs(fn) -> list[str]:
    """Messages of CUDA's own sync detector (``set_sync_debug_mode("warn")``) while ``fn`` runs."""
    import warnings

    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return [
        str(w.message) for w in caught if "synchroniz" in str(w.message) and "prototype" not in str(w.message)
    ]


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device (run by benchmarks/gpu_suite.sh)"
)
@pytest.mark.parametrize("compile_step", ["off", "on"])
@pytest.mark.parametrize("preset", ["default", "paper"])
def test_modulated_step_has_no_cuda_sync(preset, compile_step):
    """On CUDA, CUDA's own sync detector sees no synchronisation in forward, modulator call, backward,
    eager or compiled (``config.compile``)."""
    device = torch.device("cuda")
    torch.manual_seed(0)
    net = TwoTower().to(device)
    config = MultiFairConfig(
        preset=preset, validate_args=False, fairness_threshold=1e-3, compile=compile_step
    )
    mod = DualLevelGradientModulator(
        {"image": net.image, "text": net.text},
        2,
        3,
        fused_head=net.head[-1],
        config=config,
        feature_dims={"image": 8, "text": 8},
    ).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    batch = tuple(t.to(device) for t in (torch.randn(64, 6), torch.randn(64, 4)))
    labels, groups = torch.randint(0, 2, (64,), device=device), torch.randint(0, 3, (64,), device=device)
    for _ in range(2):  # warm-up (lazy optimizer state, cuBLAS handles)
        _step(net, mod, opt, (*batch, labels, groups))

    def modulated_backward():
        logits = net(*batch)
        loss = F.cross_entropy(logits, labels) + mod(logits, labels, groups)
        opt.zero_grad(set_to_none=True)
        loss.backward()

    assert _cuda_syncs(modulated_backward) == []
    assert _cuda_syncs(lambda: torch.ones(3, device=device).sum().item()) != []  # the detector works
    opt.step()
    assert mod.stats()["gate"].item() == 1.0
    if compile_step == "on":  # the step measured above really ran compiled
        assert mod._statistics_step.compiled_calls >= 2 and mod._statistics_step.eager_calls == 0


def test_counter_counts_instead_of_raising():
    x = torch.randn(8)
    with HostSyncCounter() as counter:
        x.sum().item()
        x[x > 0]
        torch.nonzero(x)
        x.numpy()
        x.tolist()
    assert counter.count == 5, counter.ops
    assert x.numpy.__name__ == "numpy"  # the patch is undone
