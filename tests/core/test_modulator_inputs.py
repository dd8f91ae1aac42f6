"""Bad inputs to ``DualLevelGradientModulator``: each error names the argument and the value."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from monai_multifair import DualLevelGradientModulator, MultiFairConfig
from monai_multifair.errors import MultiFairError

NO_LOSSES = {"direction_weight": 0.0, "fairness_weight": 0.0}


def _encoders(net):
    return dict(net.encoders)


# ---------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"num_groups": 1}, "expected `num_groups` >= 2, got 1"),
        ({"num_groups": 2.0}, "expected `num_groups` >= 2, got 2.0"),
        ({"num_groups": True}, "expected `num_groups` >= 2, got True"),
        ({"num_classes": 1}, "expected `num_classes` >= 2, got 1"),
        ({"config": {"positive_class": 2}}, "expected `positive_class` < num_classes=2, got 2"),
    ],
)
def test_bad_sizes(kwargs, pattern, make_net):
    net = make_net(0)
    args = {"num_classes": 2, "num_groups": 3, "fused_head": net.head, **kwargs}
    with pytest.raises(MultiFairError, match=re.escape(pattern)):
        DualLevelGradientModulator(_encoders(net), **args)


def test_fewer_than_two_modalities(make_net):
    net = make_net(0)
    with pytest.raises(
        MultiFairError, match=re.escape("expected `encoders` to map >= 2 modality names to modules, got 1")
    ):
        DualLevelGradientModulator({"image": net.encoders["image"]}, 2, 3, fused_head=net.head)
    with pytest.raises(MultiFairError, match="`encoders`.*got list"):
        DualLevelGradientModulator(list(net.encoders.values()), 2, 3, fused_head=net.head)


def test_bad_modality_name_and_encoder_type(make_net):
    net = make_net(0)
    with pytest.raises(MultiFairError, match=re.escape("without '.', got 'a.b'")):
        DualLevelGradientModulator(
            {"a.b": net.encoders["image"], "text": net.encoders["text"]}, 2, 3, net.head
        )
    with pytest.raises(TypeError, match=r"`encoders\['text'\]` to be an nn.Module, got function"):
        DualLevelGradientModulator({"image": net.encoders["image"], "text": lambda x: x}, 2, 3, net.head)
    with pytest.raises(TypeError, match="`config`.*got int"):
        DualLevelGradientModulator(_encoders(net), 2, 3, net.head, config=3)


def test_fused_head_with_wrong_shape(make_net):
    net = make_net(0)
    with pytest.raises(
        MultiFairError, match=r"`fused_head`.*num_classes=2.*Linear with weight shape \(3, 6\)"
    ):
        DualLevelGradientModulator(_encoders(net), 2, 3, fused_head=nn.Linear(6, 3))
    with pytest.raises(MultiFairError, match=r"`fused_head`.*ReLU with weight shape None"):
        DualLevelGradientModulator(_encoders(net), 2, 3, fused_head=nn.ReLU())


def test_direction_loss_needs_fused_head(make_net):
    net = make_net(0)
    with pytest.raises(MultiFairError, match=r"`direction_weight`=0.15 > 0 needs `fused_head`"):
        DualLevelGradientModulator(_encoders(net), 2, 3, config=MultiFairConfig(direction_weight=0.15))
    with pytest.raises(MultiFairError, match=r"`guide_hidden` == fused head input width 6.*got 4"):
        DualLevelGradientModulator(
            _encoders(net), 2, 3, net.head, config={"direction_weight": 0.15, "guide_hidden": 4}
        )


def test_unknown_modality_in_feature_dims(make_net):
    net = make_net(0)
    pattern = r"unknown modality 'imag' in `feature_dims`; known: image, text \(did you mean 'image'\?\)"
    with pytest.raises(MultiFairError, match=pattern):
        DualLevelGradientModulator(_encoders(net), 2, 3, net.head, feature_dims={"imag": 4})
    # The misspelt name is the error to report even when the encoders cannot tell their own width.
    opaque = {"image": nn.Sequential(net.encoders["image"]), "text": nn.Sequential(net.encoders["text"])}
    with pytest.raises(MultiFairError, match=pattern):
        DualLevelGradientModulator(opaque, 2, 3, net.head, feature_dims={"imag": 4, "text": 4})


def test_feature_width_needed(make_net):
    net = make_net(0)
    opaque = {"image": nn.Sequential(net.encoders["image"]), "text": net.encoders["text"]}
    with pytest.raises(
        MultiFairError, match=r"feature width of modality 'image'.*feature_dims=\{'image': width\}"
    ):
        DualLevelGradientModulator(opaque, 2, 3, net.head)
    mod = DualLevelGradientModulator(opaque, 2, 3, net.head, feature_dims={"image": 4})
    assert mod.feature_dims == {"image": 4, "text": 4}


# ---------------------------------------------------------------------- calls


@pytest.fixture
def setup(make_net, make_batch, make_modulator):
    net = make_net(0)
    return net, make_modulator(net, **NO_LOSSES), make_batch(0)


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"groups": 3}, "expected `groups` in [0, num_groups=3), got 3"),
        ({"groups": -1}, "expected `groups` in [0, num_groups=3), got -1"),
        ({"labels": 2}, "expected `labels` in [0, 2), got 2"),
        ({"labels": -4}, "expected `labels` in [0, 2), got -4"),
    ],
)
def test_values_out_of_range(change, pattern, setup):
    net, mod, batch = setup
    labels, groups = batch.labels.clone(), batch.groups.clone()
    (labels if "labels" in change else groups)[5] = next(iter(change.values()))
    with pytest.raises(MultiFairError, match=re.escape(pattern)):
        mod(net(batch.inputs), labels, groups)


def test_batch_sizes_disagree(setup):
    net, mod, batch = setup
    logits = net(batch.inputs)  # B = 24
    with pytest.raises(
        MultiFairError, match=re.escape("expected `logits` of shape [B=23, num_classes=2], got (24, 2)")
    ):
        mod(logits, batch.labels[:23], batch.groups[:23])
    with pytest.raises(
        MultiFairError,
        match=re.escape("expected `groups` of shape [B=24] (batch sizes must agree), got (23,)"),
    ):
        mod(logits, batch.labels, batch.groups[:23])
    with pytest.raises(
        MultiFairError,
        match=re.escape("feature of modality 'image' to be batch-first [B=20, ...], got shape (24, 4)"),
    ):
        mod(logits[:20], batch.labels[:20], batch.groups[:20])
    with pytest.raises(MultiFairError, match=re.escape("expected `present` of shape [B=24, M=2]")):
        mod(logits, batch.labels, batch.groups, present=torch.ones(24, 3, dtype=torch.bool))


def test_other_shape_and_type_errors(setup):
    net, mod, batch = setup
    logits = net(batch.inputs)
    with pytest.raises(
        MultiFairError, match=re.escape("expected `labels` of shape [B] (class ids), got (24, 1)")
    ):
        mod(logits, batch.labels[:, None], batch.groups)
    with pytest.raises(
        MultiFairError, match=re.escape("expected `logits` of shape [B=24, num_classes=2], got (24, 3)")
    ):
        mod(torch.zeros(24, 3), batch.labels, batch.groups)
    with pytest.raises(MultiFairError, match="integer `labels` and `groups`"):
        mod(logits, batch.labels.float(), batch.groups)


class _Transposed(nn.Linear):
    def forward(self, x):
        return super().forward(x).t()


class _Flat(nn.Linear):
    def forward(self, x):
        return super().forward(x).sum(1)


class _Pair(nn.Linear):
    def forward(self, x):
        out = super().forward(x)
        return out, out


@pytest.mark.parametrize(
    ("encoder", "pattern"),
    [
        (_Transposed, r"modality 'image' to be batch-first \[B=24, \.\.\.\], got shape \(4, 24\)"),
        (_Flat, r"modality 'image' to be batch-first \[B=24, \.\.\.\], got shape \(24,\)"),
        (_Pair, r"encoder of modality 'image' returned tuple"),
    ],
)
def test_feature_not_batch_first(encoder, pattern, make_batch):
    image, text = encoder(5, 4), nn.Linear(3, 4)
    head = nn.Linear(8, 2)
    mod = DualLevelGradientModulator({"image": image, "text": text}, 2, 3, head, config=NO_LOSSES)
    batch = make_batch(0)
    with pytest.raises(MultiFairError, match=pattern):
        features = [image(batch.inputs["image"]), text(batch.inputs["text"])]
        if isinstance(features[0], torch.Tensor):
            mod(torch.zeros(24, 2), batch.labels, batch.groups)


def test_call_before_forward(make_net, make_modulator, make_batch):
    net = make_net(0)
    mod = make_modulator(net, **NO_LOSSES)
    batch = make_batch(0)
    with pytest.raises(MultiFairError, match="no feature captured for modality 'image'"):
        mod(torch.zeros(24, 2), batch.labels, batch.groups)


def test_non_finite_values_and_validate_args(make_net, make_batch, make_modulator):
    batch = make_batch(0)
    for validate in (True, False):
        net = make_net(0)
        mod = make_modulator(net, validate_args=validate, **NO_LOSSES)
        logits = net(batch.inputs).detach().clone()
        logits[3, 1] = float("nan")
        if validate:
            with pytest.raises(MultiFairError, match="`logits` contain NaN or inf"):
                mod(logits, batch.labels, batch.groups)
            inputs = dict(batch.inputs, text=batch.inputs["text"].clone())
            inputs["text"][0, 0] = float("inf")
            net(inputs)  # captures an inf feature; the logits passed below are finite
            with pytest.raises(MultiFairError, match="feature of modality 'text' contains NaN or inf"):
                mod(torch.zeros(24, 2), batch.labels, batch.groups)
        else:
            # Without validation the value checks are skipped: the step runs on the NaN logits.
            mod(logits, batch.labels, batch.groups)
            assert int(mod.steps) == 1 and mod.stats()["guide_auc"].shape == (2,)


def test_features_are_not_reused_by_a_second_call(setup):
    # Each call consumes the features of its own forward: a call without a new forward must not
    # silently train the guides on the previous step's features.
    net, mod, batch = setup
    mod(net(batch.inputs), batch.labels, batch.groups)
    with pytest.raises(MultiFairError, match="no feature captured for modality 'image'"):
        mod(torch.zeros(24, 2), batch.labels, batch.groups)


def test_an_encoder_called_twice_in_a_step_is_reported_once():
    import warnings as _warnings

    from torch import nn as _nn

    from monai_multifair import DualLevelGradientModulator, MultiFairConfig

    class TwoEyes(_nn.Module):
        """One fundus encoder applied to both eyes, plus a notes encoder."""

        def __init__(self) -> None:
            super().__init__()
            self.eye = _nn.Linear(4, 6)
            self.notes = _nn.Linear(3, 6)
            self.head = _nn.Linear(18, 2)

        def forward(self, left, right, notes):
            return self.head(torch.cat([self.eye(left), self.eye(right), self.notes(notes)], dim=1))

    torch.manual_seed(0)
    net = TwoEyes()
    mod = DualLevelGradientModulator(
        {"eye": net.eye, "notes": net.notes},
        2,
        2,
        config=MultiFairConfig(direction_weight=0.0),
        feature_dims={"eye": 6, "notes": 6},
    )
    x = torch.randn(8, 4), torch.randn(8, 4), torch.randn(8, 3)
    labels, groups = torch.tensor([0, 1] * 4), torch.tensor([0, 0, 1, 1] * 2)
    with pytest.warns(RuntimeWarning, match="modality 'eye' ran more than once in the forward that produced"):
        mod(net(*x), labels, groups)
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")
        mod(net(*x), labels, groups)  # reported once per modulator
    # a separate earlier forward (e.g. a reference pass) whose output the logits do not use: no warning
    other = DualLevelGradientModulator(
        {"eye": net.eye, "notes": net.notes},
        2,
        2,
        config=MultiFairConfig(direction_weight=0.0),
        feature_dims={"eye": 6, "notes": 6},
    )
    net.eye(x[0]), net.notes(x[2])
    with _warnings.catch_warnings():
        _warnings.simplefilter("error", RuntimeWarning)
        logits = net.head(torch.cat([net.eye(x[0]), torch.zeros(8, 6), net.notes(x[2])], dim=1))
        other(logits, labels, groups)
