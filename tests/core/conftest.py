"""Tiny networks and batches shared by the core tests.

The encoders are single ``nn.Linear`` layers, so the gradient that reaches an encoder's weight has the
closed form ``dL/dW_m = sum_i s_i g_i x_i^T`` (``g_i = dL/dh_{m,i}``, ``s_i`` the per-sample scale),
which the gradient-scaling tests use as their oracle. The fixtures are session scoped factories so
that hypothesis tests can use them too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from monai_multifair import DualLevelGradientModulator, MultiFairConfig

#: Input width of each modality of the default tiny network.
INPUT_DIMS = {"image": 5, "text": 3}


class TinyFusionNet(nn.Module):
    """``M`` linear encoders -> concatenation -> ``Linear -> ReLU`` -> fused head ``Linear(hidden, C)``."""

    def __init__(
        self, input_dims: dict[str, int], width: int = 4, hidden: int = 6, num_classes: int = 2
    ) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict({name: nn.Linear(dim, width) for name, dim in input_dims.items()})
        self.trunk = nn.Linear(width * len(input_dims), hidden)
        self.head = nn.Linear(hidden, num_classes)

    def fuse(self, features: list[Tensor]) -> Tensor:
        """Logits from the modality features (in encoder order)."""
        return self.head(torch.relu(self.trunk(torch.cat(features, dim=1))))

    def forward(self, inputs: dict[str, Tensor]) -> Tensor:
        return self.fuse([encoder(inputs[name]) for name, encoder in self.encoders.items()])


@dataclass
class Batch:
    inputs: dict[str, Tensor]
    labels: Tensor
    groups: Tensor


def _make_net(seed: int = 0, input_dims: dict[str, int] | None = None, **kwargs) -> TinyFusionNet:
    torch.manual_seed(seed)
    return TinyFusionNet(dict(input_dims or INPUT_DIMS), **kwargs)


def _make_batch(
    seed: int,
    size: int = 24,
    num_groups: int = 3,
    num_classes: int = 2,
    input_dims: dict[str, int] | None = None,
) -> Batch:
    """Random inputs whose label is weakly predictable from every modality, with balanced groups."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(size) % num_classes
    labels = labels[torch.randperm(size, generator=gen)]
    groups = torch.randint(0, num_groups, (size,), generator=gen)
    inputs = {
        name: torch.randn(size, dim, generator=gen) + 0.8 * labels.unsqueeze(1).float()
        for name, dim in (input_dims or INPUT_DIMS).items()
    }
    return Batch(inputs, labels, groups)


def _make_modulator(
    net: TinyFusionNet, num_groups: int = 3, seed: int = 0, **config
) -> DualLevelGradientModulator:
    """A modulator on ``net``'s encoders (guide dropout 0 unless given, so runs are deterministic)."""
    config.setdefault("guide_dropout", 0.0)
    torch.manual_seed(seed)
    return DualLevelGradientModulator(
        dict(net.encoders),
        num_classes=net.head.out_features,
        num_groups=num_groups,
        fused_head=net.head,
        config=MultiFairConfig(**config),
    )


def _train_step(
    net: nn.Module,
    mod: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    present: Tensor | None = None,
) -> dict[str, Tensor]:
    """Forward, modulator call, ``CE + aux`` backward, optimizer step; returns the stats."""
    logits = net(batch.inputs)
    aux = mod(logits, batch.labels, batch.groups, present=present)
    optimizer.zero_grad(set_to_none=True)
    (F.cross_entropy(logits, batch.labels) + aux).backward()
    optimizer.step()
    return mod.stats()


def _record_guide_outputs(mod: nn.Module) -> list[list[Tensor]]:
    """Wrap ``mod._guide_step`` so that each call's guide logits (one ``[N, C]`` per modality) are kept."""
    calls: list[list[Tensor]] = []
    original = mod._guide_step

    def recording(feats, labels, present):
        out = original(feats, labels, present)
        calls.append(out)
        return out

    mod._guide_step = recording
    return calls


def _record_scales(mod: nn.Module) -> list[Tensor]:
    """Wrap ``mod._set_scales`` so that each call's per-sample scales ``[M, B]`` are kept."""
    calls: list[Tensor] = []
    original = mod._set_scales

    def recording(slots, scales, magnitude=None):
        calls.append(scales.detach().clone())
        original(slots, scales, magnitude)

    mod._set_scales = recording
    return calls


@pytest.fixture(scope="session")
def record_guide_outputs() -> Callable[[nn.Module], list[list[Tensor]]]:
    return _record_guide_outputs


@pytest.fixture(scope="session")
def record_scales() -> Callable[[nn.Module], list[Tensor]]:
    return _record_scales


@pytest.fixture(scope="session")
def make_net() -> Callable[..., TinyFusionNet]:
    return _make_net


@pytest.fixture(scope="session")
def make_batch() -> Callable[..., Batch]:
    return _make_batch


@pytest.fixture(scope="session")
def make_modulator() -> Callable[..., DualLevelGradientModulator]:
    return _make_modulator


@pytest.fixture(scope="session")
def train_step() -> Callable[..., dict[str, Tensor]]:
    return _train_step


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """All the factories above in one object, for helpers that need several of them."""
    return SimpleNamespace(
        make_net=_make_net,
        make_batch=_make_batch,
        make_modulator=_make_modulator,
        train_step=_train_step,
        record_guide_outputs=_record_guide_outputs,
        record_scales=_record_scales,
    )
