"""MultimodalFusionClassifier and the fusion blocks: shapes, presence masking, demographic token, registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from monai_multifair.errors import MultiFairError
from monai_multifair.networks import AttentionFusion, DemographicToken, GuideHead, MultimodalFusionClassifier


class TinyEncoder(nn.Sequential):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(nn.Linear(in_features, out_features), nn.Tanh())
        self.out_features = out_features


def make_net(**kwargs) -> MultimodalFusionClassifier:
    torch.manual_seed(0)
    options = {"num_classes": 2, "fusion_dim": 8, "num_heads": 2, "num_layers": 2, "dropout": 0.0}
    options.update(kwargs)
    encoders = {"img": TinyEncoder(6, 5), "txt": TinyEncoder(4, 3)}
    return MultimodalFusionClassifier(encoders, **options).eval()


def make_inputs(batch: int = 5, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"img": torch.randn(batch, 6, generator=g), "txt": torch.randn(batch, 4, generator=g)}


@pytest.mark.parametrize("num_classes", [2, 4])
def test_shapes_and_exposed_parts(num_classes):
    net = make_net(num_classes=num_classes, head_hidden=7)
    logits = net(make_inputs(batch=5))
    assert logits.shape == (5, num_classes)
    assert net.modality_names == ("img", "txt")
    assert isinstance(net.encoders, nn.ModuleDict) and list(net.encoders) == ["img", "txt"]
    assert net.feature_dims == {"img": 5, "txt": 3}
    assert isinstance(net.fused_head, nn.Linear)
    assert net.fused_head.weight.shape == (num_classes, 7)
    # the fused head is the last layer: logits are exactly its output on the head's hidden activations
    seen = {}
    handle = net.fused_head.register_forward_hook(lambda m, a, out: seen.setdefault("out", out))
    again = net(make_inputs(batch=5))
    handle.remove()
    torch.testing.assert_close(again, seen["out"])
    # no parameter is registered twice (fused_head is a view of head[-1], not a second submodule)
    names = [n for n, _ in net.named_parameters()]
    assert not any(n.startswith("fused_head") for n in names)
    assert len(net.state_dict()) == len(set(net.state_dict()))


def test_attention_fusion_matches_hand_computation():
    torch.manual_seed(0)
    fusion = AttentionFusion({"a": 5, "b": 3}, fusion_dim=8, num_heads=2, num_layers=1, dropout=0.0).eval()
    ha, hb = torch.randn(4, 5), torch.randn(4, 3)
    tokens = (
        torch.stack([fusion.projections[0](ha), fusion.projections[1](hb)], dim=1) + fusion.modality_embedding
    )
    layer = fusion.encoder.layers[0]
    # post-norm transformer layer by hand: x = LN(x + SA(x)); x = LN(x + FF(x))
    attn, _ = layer.self_attn(tokens, tokens, tokens, need_weights=False)
    x = layer.norm1(tokens + attn)
    x = layer.norm2(x + layer.linear2(torch.relu(layer.linear1(x))))
    expected = x.mean(dim=1)
    torch.testing.assert_close(fusion([ha, hb]), expected, rtol=1e-5, atol=1e-6)
    # an all-True presence mask is the same as no mask
    torch.testing.assert_close(fusion([ha, hb], present=torch.ones(4, 2, dtype=torch.bool)), expected)


def test_missing_modality_input_changes_nothing():
    net = make_net()
    inputs = make_inputs(batch=4)
    present = torch.tensor([[True, False], [True, True], [False, True], [True, True]])
    base = net(inputs, present=present)

    changed = {k: v.clone() for k, v in inputs.items()}
    changed["txt"][0] = float("nan")  # missing for sample 0: even NaN must not leak
    changed["img"][2] = 100.0  # missing for sample 2
    out = net(changed, present=present)
    torch.testing.assert_close(out[[0, 2]], base[[0, 2]])
    torch.testing.assert_close(out[[1, 3]], base[[1, 3]])  # other samples are independent

    # the same change in a present modality does change the output (the test can fail)
    changed_present = {k: v.clone() for k, v in inputs.items()}
    changed_present["txt"][1] = 100.0
    assert not torch.allclose(net(changed_present, present=present)[1], base[1])

    # and no gradient reaches a missing modality's input
    grad_inputs = {k: v.clone().requires_grad_(True) for k, v in inputs.items()}
    net(grad_inputs, present=present).sum().backward()
    assert torch.all(grad_inputs["txt"].grad[0] == 0) and torch.all(grad_inputs["img"].grad[2] == 0)
    assert torch.any(grad_inputs["txt"].grad[1] != 0)


def test_presence_mask_equals_single_modality_pooling():
    """With one layer and one present token, the output is that token through the layer alone."""
    net = make_net(num_layers=1)
    inputs = make_inputs(batch=3)
    present = torch.tensor([[True, False]] * 3)
    fusion = net.fusion
    token = (
        fusion.projections[0](net.encoders["img"](inputs["img"])) + fusion.modality_embedding[0]
    ).unsqueeze(1)
    layer = fusion.encoder.layers[0]
    attn, _ = layer.self_attn(token, token, token, need_weights=False)  # a lone token attends to itself
    x = layer.norm1(token + attn)
    x = layer.norm2(x + layer.linear2(torch.relu(layer.linear1(x))))
    torch.testing.assert_close(net(inputs, present=present), net.head(x[:, 0]), rtol=1e-5, atol=1e-6)


def test_demographic_token_off_ignores_groups_on_uses_them():
    inputs = make_inputs(batch=4)
    off = make_net()
    torch.testing.assert_close(off(inputs, groups=torch.tensor([0, 1, 2, 0])), off(inputs))
    assert off.uses_groups is False

    on = make_net(demographic_token=True, num_groups=3)
    assert on.uses_groups is True
    assert isinstance(on.demographic, DemographicToken)
    a = on(inputs, groups=torch.tensor([0, 0, 0, 0]))
    b = on(inputs, groups=torch.tensor([0, 1, 2, 0]))
    torch.testing.assert_close(a[[0, 3]], b[[0, 3]])  # same group, same output
    assert not torch.allclose(a[1], b[1]) and not torch.allclose(a[2], b[2])
    # the token is always present, so a sample whose modalities are all missing still has an output
    present = torch.tensor([[False, False], [True, True], [True, False], [False, True]])
    assert torch.isfinite(on(inputs, groups=torch.tensor([0, 1, 2, 0]), present=present)).all()
    # ... and then it depends only on the group
    other = {k: v + 3.0 for k, v in inputs.items()}
    torch.testing.assert_close(
        on(other, groups=torch.tensor([0, 1, 2, 0]), present=present)[0],
        on(inputs, groups=torch.tensor([0, 1, 2, 0]), present=present)[0],
    )


def test_demographic_token_errors():
    with pytest.raises(MultiFairError, match="num_groups"):
        make_net(demographic_token=True)
    net = make_net(demographic_token=True, num_groups=3)
    with pytest.raises(MultiFairError, match="groups.*demographic token.*inference"):
        net(make_inputs(batch=2))
    with pytest.raises(MultiFairError, match=r"groups.*\[0, 3\).*\[0, 3\]"):
        net(make_inputs(batch=2), groups=torch.tensor([0, 3]))
    with pytest.raises(MultiFairError, match="2 entries"):
        net(make_inputs(batch=2), groups=torch.tensor([0, 1, 2]))


def test_input_and_argument_errors():
    net = make_net()
    with pytest.raises(MultiFairError, match="missing modality 'txt'.*did you mean 'text'"):
        net({"img": torch.zeros(2, 6), "text": torch.zeros(2, 4)})
    with pytest.raises(MultiFairError, match="present.*shape"):
        net(make_inputs(batch=2), present=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(MultiFairError, match="at least one present modality"):
        net(make_inputs(batch=2), present=torch.tensor([[True, True], [False, False]]))
    with pytest.raises(MultiFairError, match="divisible"):
        make_net(fusion_dim=9, num_heads=2)
    with pytest.raises(MultiFairError, match="num_classes.*>= 2.*1"):
        make_net(num_classes=1)
    with pytest.raises(MultiFairError, match="out_features.*feature_dims"):
        MultimodalFusionClassifier({"a": nn.Sequential(nn.Linear(3, 4)), "b": nn.Linear(3, 2)}, num_classes=2)
    with pytest.raises(MultiFairError, match="unknown modality 'c'"):
        MultimodalFusionClassifier(
            {"a": nn.Linear(3, 4), "b": nn.Linear(3, 2)}, num_classes=2, feature_dims={"a": 4, "b": 2, "c": 1}
        )
    with pytest.raises(MultiFairError, match="'name' key"):
        MultimodalFusionClassifier({"a": {"channels": 3}}, num_classes=2)
    with pytest.raises(MultiFairError, match=r"encoders\['a'\].*int"):
        MultimodalFusionClassifier({"a": 3}, num_classes=2)
    with pytest.raises(MultiFairError, match="without '.'"):
        MultimodalFusionClassifier({"a.b": nn.Linear(2, 2)}, num_classes=2, feature_dims={"a.b": 2})


def test_feature_dims_flatten_nonflat_encoder_outputs():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 2, 3, padding=1)  # [B, 2, 4, 4] -> flattened to 32 features
    net = MultimodalFusionClassifier(
        {"map": conv, "vec": TinyEncoder(4, 3)},
        num_classes=3,
        fusion_dim=8,
        num_heads=2,
        num_layers=1,
        feature_dims={"map": 32},
    )
    assert net({"map": torch.randn(2, 1, 4, 4), "vec": torch.randn(2, 4)}).shape == (2, 3)


def test_bf16_autocast_forward():
    net = make_net()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(make_inputs(batch=3), present=torch.tensor([[True, False], [True, True], [False, True]]))
    assert out.shape == (3, 2) and torch.isfinite(out.float()).all()


def test_guide_head_reexport_matches_fused_head_shape():
    net = make_net(head_hidden=6)
    guide = GuideHead(net.feature_dims["img"], net.fused_head.in_features, 2)
    assert guide.output.weight.shape == net.fused_head.weight.shape


def test_encoder_by_name_through_registry():
    from monai_multifair.plugins import create_encoder, list_encoders

    assert "small-cnn-2d" in [spec.name for spec in list_encoders()]
    vec = TinyEncoder(4, 3)
    torch.manual_seed(0)
    net = MultimodalFusionClassifier(
        {"img": {"name": "small-cnn-2d", "in_channels": 1, "channels": [4]}, "vec": vec},
        num_classes=2,
        fusion_dim=8,
        num_heads=2,
        num_layers=1,
    )
    torch.manual_seed(0)
    direct = create_encoder("small-cnn-2d", in_channels=1, channels=[4])
    assert type(net.encoders["img"]) is type(direct)
    assert net.feature_dims["img"] == direct.out_features == 4
    for (name, a), (_, b) in zip(net.encoders["img"].state_dict().items(), direct.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)  # same build as calling the registry directly
    assert net({"img": torch.randn(2, 1, 8, 8), "vec": torch.randn(2, 4)}).shape == (2, 2)
    text = MultimodalFusionClassifier(
        {"img": TinyEncoder(6, 5), "txt": "bow-text"}, num_classes=2, fusion_dim=8, num_heads=2, num_layers=1
    )
    assert text.feature_dims["txt"] == text.encoders["txt"].out_features
    with pytest.raises(MultiFairError, match="no-such-encoder"):
        MultimodalFusionClassifier({"img": "no-such-encoder", "vec": TinyEncoder(4, 3)}, num_classes=2)
