"""Pretrained encoders in a run: ``weights``, ``freeze``/``trainable``, per-encoder learning rates, the
``fairvlmed-vit-bert`` preset with tiny checkpoints substituted by overrides."""

from __future__ import annotations

import pytest
import torch
from _hf_checkpoints import write_bert, write_vision_model
from torch import nn

from monai_multifair.config import load_config
from monai_multifair.data import PRESENCE_KEY, build_datasets, make_cohort
from monai_multifair.engine import train
from monai_multifair.engine.builders import build_collate, build_network, build_optimizer, parameter_groups
from monai_multifair.engine.run import latest_checkpoint
from monai_multifair.errors import MultiFairError
from monai_multifair.networks.encoders import HFImageEncoder, HFTextEncoder
from monai_multifair.plugins import create_encoder

FUNDUS = {"in_channels": 1, "channels": [4, 8]}


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    from monai_multifair.config import load_config as load

    config = load(
        "demo-quick",
        ["data.synthetic.n_patients=120", "data.synthetic.image_size=16"],
    )
    return build_datasets(config)


@pytest.fixture
def fundus_weights(tmp_path):
    """A small-cnn-2d state dict saved as a MONAI user has it: ``{"state_dict": ...}`` with DDP's prefix."""
    torch.manual_seed(123)
    source = create_encoder("small-cnn-2d", **FUNDUS)
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "cnn.pt"
    )
    return tmp_path / "cnn.pt", source.state_dict()


def _weights(path) -> str:
    return f"encoders.fundus.weights={{path: {path}, key: state_dict, prefix_map: {{'module.': ''}}}}"


@pytest.mark.parametrize(
    ("override", "match"),
    [
        (
            "encoders.fundus.trainable=[features.0.*]",
            r"`encoders\.fundus`: key `trainable`: expected only with `freeze: true`",
        ),
        ("encoders.fundus.lr=0", r"`encoders\.fundus\.lr`: expected a number > 0 or null, got 0"),
        (
            "encoders.fundus.weights={path: w.pt, strick: false}",
            r"`encoders\.fundus\.weights\.strick` \(did you mean 'strict'\?\)",
        ),
        ("encoders.fundus.weights={key: model}", r"`encoders\.fundus\.weights\.path` is required"),
        ("encoders.fundus.freeze=maybe", r"`encoders\.fundus\.freeze`: expected true or false, got 'maybe'"),
    ],
)
def test_encoder_keys_are_validated(tiny_config, override, match):
    with pytest.raises(MultiFairError, match=match):
        tiny_config(override)


def test_a_whole_frozen_encoder_takes_no_learning_rate(tiny_config):
    with pytest.raises(
        MultiFairError, match=r"`encoders\.fundus`: key `lr`: expected no learning rate .* got 0\.1"
    ):
        tiny_config("encoders.fundus.freeze=true", "encoders.fundus.lr=0.1")
    config = tiny_config("encoders.fundus.weights=/models/cnn.pt")
    assert (
        config.encoders["fundus"].weights.path == "/models/cnn.pt"
        and config.encoders["fundus"].weights.strict
    )
    assert load_config(config.to_dict()) == config  # the resolved config round-trips


def test_build_network_loads_the_weights(tiny_config, splits, fundus_weights):
    path, saved = fundus_weights
    network = build_network(tiny_config(_weights(path)), splits["train"])
    loaded = network.encoders["fundus"].state_dict()
    assert loaded.keys() == saved.keys() and all(torch.equal(loaded[k], saved[k]) for k in saved)
    skipped = build_network(tiny_config(_weights(path)), splits["train"], load_weights=False)
    assert not torch.equal(skipped.encoders["fundus"].features[0].weight, saved["features.0.weight"])
    with pytest.raises(
        MultiFairError, match=r"`encoders\.fundus\.weights`: .* none of its 12 keys is a key of"
    ):
        build_network(
            tiny_config(f"encoders.fundus.weights={{path: {path}, key: state_dict}}"), splits["train"]
        )
    dropped = _weights(path)[:-1] + ", exclude: [module.features.4.]}"
    with pytest.raises(
        MultiFairError, match=r"`weights\.strict: true`: 1 encoder key\(s\) missing .*'features\.4\.weight'"
    ):
        build_network(tiny_config(dropped), splits["train"])
    partial = build_network(tiny_config(dropped[:-1] + ", strict: false}"), splits["train"]).encoders[
        "fundus"
    ]
    assert torch.equal(partial.features[0].weight, saved["features.0.weight"])
    assert not torch.equal(partial.features[4].weight, saved["features.4.weight"])
    with pytest.raises(
        MultiFairError, match=r"`encoders\.fundus\.trainable`: .* 'layer4\.\*', which matches none"
    ):
        build_network(
            tiny_config("encoders.fundus.freeze=true", "encoders.fundus.trainable=[layer4.*]"),
            splits["train"],
        )


def test_frozen_parameters_stay_untouched_after_a_training_step(tiny_config, splits):
    config = tiny_config(
        "encoders.fundus.freeze=true",
        "encoders.fundus.trainable=[features.4.*]",  # the second conv block's convolution
        "encoders.fundus.lr=0.5",
        "encoders.notes.lr=0.001",
        "trainer.weight_decay=0.1",
    )
    torch.manual_seed(0)
    network = build_network(config, splits["train"])
    optimizer = build_optimizer(config, network)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert {name: g["lr"] for name, g in groups.items()} == {
        "encoders.fundus": 0.5,
        "encoders.notes": 0.001,
        "default": config.trainer.lr,
    }
    fundus = network.encoders["fundus"]
    trainable = {n for n, p in fundus.named_parameters() if p.requires_grad}
    assert trainable == {"features.4.weight"}
    assert {id(p) for p in groups["encoders.fundus"]["params"]} == {id(fundus.features[4].weight)}
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert all(id(p) not in in_optimizer for p in network.parameters() if not p.requires_grad)

    before = {n: p.detach().clone() for n, p in network.named_parameters()}
    batch = build_collate(network, splits["train"])([splits["train"][i] for i in range(16)])
    loss = nn.functional.cross_entropy(network({m: batch[m] for m in network.modality_names}), batch["label"])
    loss.backward()
    optimizer.step()
    after = dict(network.named_parameters())
    for name, value in before.items():
        changed = not torch.equal(after[name], value)
        assert changed == after[name].requires_grad, name


def test_a_run_keeps_frozen_weights_as_loaded(tiny_config, tmp_path, fundus_weights):
    path, saved = fundus_weights
    config = tiny_config(_weights(path), "encoders.fundus.freeze=true", "trainer.epochs=1")
    result = train(config, tmp_path / "run", progress=False)
    state = torch.load(latest_checkpoint(result.run_dir), weights_only=True)["model"]
    fundus = {
        k.removeprefix("encoders.fundus."): v for k, v in state.items() if k.startswith("encoders.fundus.")
    }
    parameters = {n for n, _ in create_encoder("small-cnn-2d", **FUNDUS).named_parameters()}
    assert parameters and all(torch.equal(fundus[name], saved[name]) for name in parameters)
    assert not torch.equal(
        state["head.0.weight"], build_network(config, build_datasets(config)["train"]).head[0].weight
    )


def test_plain_parameters_refuse_per_encoder_learning_rates(tiny_config, splits):
    config = tiny_config("encoders.notes.lr=0.01")
    network = build_network(config, splits["train"])
    with pytest.raises(
        MultiFairError,
        match=r"`encoders\.notes\.lr`: a per-encoder learning rate needs build_optimizer\(config, network\)",
    ):
        build_optimizer(config, network.parameters())
    wrapped = nn.Module()
    wrapped.module = network  # as DDP holds it
    assert [g["name"] for g in parameter_groups(config, wrapped)] == ["encoders.notes", "default"]


def test_fairvlmed_vit_bert_preset_with_tiny_checkpoints(tmp_path):
    make_cohort(n_patients=60, image_size=16, seed=2).write_fairvlmed(tmp_path / "FairVLMed")
    write_vision_model(tmp_path / "vit", "vit", image_size=32)
    write_bert(tmp_path / "bert")
    with pytest.raises(
        MultiFairError,
        match=r"`encoders\.fundus`: .*--set encoders\.fundus\.options\.model_name_or_path=PATH",
    ):
        build_network(
            load_config("fairvlmed-vit-bert", [f"data.fairvlmed.root={tmp_path / 'FairVLMed'}"]),
            build_datasets(load_config("fairvlmed", [f"data.fairvlmed.root={tmp_path / 'FairVLMed'}"]))[
                "train"
            ],
        )
    config = load_config(
        "fairvlmed-vit-bert",
        [
            f"data.fairvlmed.root={tmp_path / 'FairVLMed'}",
            f"encoders.fundus.options.model_name_or_path={tmp_path / 'vit'}",
            f"encoders.notes.options.model_name_or_path={tmp_path / 'bert'}",
            "encoders.notes.options.max_length=32",  # the tiny BERT's 64 positions
        ],
    )
    assert [config.encoders[m].name for m in ("fundus", "notes")] == ["hf-image", "hf-text"]
    datasets = build_datasets(config)
    network = build_network(config, datasets["train"]).eval()
    fundus, notes = network.encoders["fundus"], network.encoders["notes"]
    assert isinstance(fundus, HFImageEncoder) and isinstance(notes, HFTextEncoder)
    assert fundus.in_channels == 1 and fundus.out_features == 16 and notes.pooling == "cls"
    assert [g["name"] for g in build_optimizer(config, network).param_groups] == [
        "encoders.fundus",
        "encoders.notes",
        "default",
    ]
    batch = build_collate(network, datasets["train"])([datasets["train"][i] for i in range(4)])
    assert batch["notes"].shape == (4, 32) and batch[PRESENCE_KEY].shape == (4, 2)
    with torch.no_grad():
        logits = network({m: batch[m] for m in network.modality_names}, present=batch[PRESENCE_KEY])
    assert logits.shape == (4, 2) and torch.isfinite(logits).all()
