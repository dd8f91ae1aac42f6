"""MultiFairHandler in a real SupervisedTrainer == the core modulator driven by hand."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from _workflow import MODALITIES, NUM_GROUPS, TinyEncoder, make_loader, make_net, make_records, make_trainer
from ignite.engine import Events
from monai.engines.utils import IterationEvents
from monai.handlers import CheckpointLoader, CheckpointSaver
from monai.inferers import SimpleInferer
from torch import nn

from monai_multifair.core import (
    DualLevelGradientModulator,
    MultiFairConfig,
    ReferenceModulator,
    build_modulator,
)
from monai_multifair.errors import MultiFairError
from monai_multifair.handlers import MultiFairHandler

CONFIG = {"preset": "paper", "guide_dropout": 0.1, "fairness_threshold": 0.02}


def hand_loop(
    records,
    config,
    epochs=2,
    accumulation=1,
    batch_size=12,
    autocast_dtype=None,
    scaler=None,
    modulator_seed=123,
):
    """The reference: forward, modulator call, (CE + aux) backward, AdamW step, in a plain loop."""
    net = make_net()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-2)
    # before seeding: monai's DataLoader re-seeds the global generator with its initial seed when built
    loader = make_loader(records, batch_size=batch_size)
    torch.manual_seed(modulator_seed)
    mod = build_modulator(
        dict(net.encoders),
        2,
        NUM_GROUPS,
        fused_head=net.fused_head,
        config=config,
        feature_dims=net.feature_dims,
    )
    stats = []
    for _ in range(epochs):
        for i, batch in enumerate(loader):
            net.train()
            if i % accumulation == 0:
                optimizer.zero_grad()
            inputs = {m: batch[m] for m in MODALITIES}
            if autocast_dtype is None:
                logits = net(inputs)
            else:
                with torch.autocast("cpu", dtype=autocast_dtype):
                    logits = net(inputs)
            loss = F.cross_entropy(logits, batch["label"]) + mod(logits, batch["label"], batch["group"])
            loss = loss / accumulation if accumulation > 1 else loss
            if scaler is None:
                loss.backward()
            else:
                scaler.scale(loss).backward()
            if (i + 1) % accumulation == 0 or i + 1 == len(loader):
                if scaler is None:
                    optimizer.step()
                else:
                    scaler.step(optimizer)
                    scaler.update()
            stats.append({k: v.clone() for k, v in mod.stats().items()})
    return net, mod, stats


class CPUAutocastInferer(SimpleInferer):
    """MONAI's trainer autocasts for CUDA only; on CPU the forward is autocast here (bf16)."""

    def __call__(self, inputs, network, *args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return network(inputs, *args, **kwargs)


def run_handler(
    records, config, epochs=2, modulator_seed=123, trainer_kwargs=None, extra_handlers=(), **handler_kwargs
):
    net = make_net()
    handler = MultiFairHandler(num_classes=2, num_groups=NUM_GROUPS, config=config, **handler_kwargs)
    trainer = make_trainer(
        net, make_loader(records), [handler, *extra_handlers], max_epochs=epochs, **(trainer_kwargs or {})
    )
    stats = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda e: stats.append({k: v.clone() for k, v in handler.modulator.stats().items()}),
    )
    torch.manual_seed(modulator_seed)  # the modulator (guide heads) is built at Events.STARTED
    trainer.run()
    return net, handler, trainer, stats


def assert_same_state(a: nn.Module, b: nn.Module, atol=1e-6):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        if isinstance(sa[key], torch.Tensor):
            torch.testing.assert_close(sa[key], sb[key], atol=atol, rtol=1e-5, equal_nan=True, msg=key)


def assert_same_stats(xs, ys):
    assert len(xs) == len(ys)
    for step, (x, y) in enumerate(zip(xs, ys)):
        for key in x:
            torch.testing.assert_close(
                x[key], y[key], atol=1e-6, rtol=1e-5, equal_nan=True, msg=f"{step} {key}"
            )


def test_handler_equals_hand_loop():
    records = make_records()
    net, handler, trainer, stats = run_handler(records, CONFIG)
    ref_net, ref_mod, ref_stats = hand_loop(records, CONFIG)
    assert isinstance(handler.modulator, DualLevelGradientModulator)
    assert_same_state(net, ref_net)
    assert_same_state(handler.modulator, ref_mod)
    assert_same_stats(stats, ref_stats)
    assert any(float(s["gate"]) == 1.0 for s in ref_stats), "the gate never opened: group factors untested"
    # the modulation really changed training: a run without the handler ends elsewhere
    plain = make_net()
    make_trainer(plain, make_loader(records), [], max_epochs=2).run()
    assert not torch.allclose(plain.fused_head.weight, net.fused_head.weight, atol=1e-4)


def test_published_metrics_and_interval():
    records = make_records()  # 4 iterations per epoch
    seen = []
    handler = MultiFairHandler(
        num_classes=2, num_groups=NUM_GROUPS, config=CONFIG, stats_interval=3, group_labels=["a", "b", "c"]
    )
    net = make_net()
    trainer = make_trainer(net, make_loader(records), [handler], max_epochs=1)

    @trainer.on(Events.ITERATION_COMPLETED)
    def record(engine):
        seen.append((engine.state.iteration, dict(engine.state.metrics)))

    trainer.run()
    assert [it for it, m in seen if "multifair/gate" in m] == [
        3,
        4,
    ]  # published at iteration 3 (interval), then kept
    published = seen[2][1]
    stats = dict(seen)  # noqa: F841 - readability
    final = trainer.state.metrics  # published again at EPOCH_COMPLETED with the last step's stats
    expected = handler.modulator.stats()
    for m_index, m in enumerate(MODALITIES):
        assert final[f"multifair/modality_scale/{m}"] == pytest.approx(
            float(expected["modality_scale"][m_index])
        )
        assert final[f"multifair/guide_auc/{m}"] == pytest.approx(
            float(expected["guide_auc"][m_index]), nan_ok=True
        )
        for g_index, g in enumerate("abc"):
            assert final[f"multifair/group_factor/{m}/{g}"] == pytest.approx(
                float(expected["group_factor"][m_index, g_index])
            )
    assert final["multifair/gate"] == float(expected["gate"])
    assert {
        "multifair/direction_loss",
        "multifair/fairness_loss",
        "multifair/fused_group_auc/b",
    } <= final.keys()
    assert all(isinstance(v, float) for k, v in published.items() if k.startswith("multifair/"))


def test_gradient_accumulation_equals_hand_loop():
    records = make_records(n=40)  # 4 batches of 12 (last of 4): accumulation 3 flushes at the epoch end
    net, handler, _, stats = run_handler(records, CONFIG, trainer_kwargs={"accumulation_steps": 3})
    ref_net, ref_mod, ref_stats = hand_loop(records, CONFIG, accumulation=3)
    assert_same_state(net, ref_net)
    assert_same_state(handler.modulator, ref_mod)
    assert_same_stats(stats, ref_stats)  # one modulator step per micro-batch
    assert int(handler.modulator.steps) == 2 * 4


@pytest.mark.filterwarnings("ignore:.*CUDA is not available.*:UserWarning")
@pytest.mark.filterwarnings("ignore:.*torch.cuda.amp.GradScaler.*:FutureWarning")
def test_amp_scaler_commutes_with_modulation():
    """MONAI's AMP path (scaler.scale(loss).backward(), scaler.step) with a CPU GradScaler swapped in and a
    bf16 forward: equal to the hand loop with the same scaler, and to the run without any scaler (the
    modulation hooks are linear, nothing unscales twice)."""
    records = make_records()
    scale = 2.0**12

    def swap_scaler(engine):
        engine.scaler = torch.amp.GradScaler("cpu", init_scale=scale, growth_interval=1000)

    config = {**CONFIG, "guide_dropout": 0.0}
    amp = {"amp": True, "inferer": CPUAutocastInferer()}
    net = make_net()
    handler = MultiFairHandler(num_classes=2, num_groups=NUM_GROUPS, config=config)
    trainer = make_trainer(net, make_loader(records), [handler], max_epochs=2, **amp)
    trainer.add_event_handler(
        Events.STARTED, swap_scaler
    )  # Trainer.run() sets its CUDA scaler before STARTED
    unscale_calls = []
    original = torch.amp.GradScaler.unscale_

    def counting_unscale(self, optimizer):
        unscale_calls.append(trainer.state.iteration)
        return original(self, optimizer)

    torch.manual_seed(123)
    torch.amp.GradScaler.unscale_ = counting_unscale
    try:
        trainer.run()
    finally:
        torch.amp.GradScaler.unscale_ = original
    assert isinstance(trainer.scaler, torch.amp.GradScaler) and trainer.scaler.get_scale() == scale
    assert len(unscale_calls) == len(set(unscale_calls)) == 8  # once per optimizer step (inside scaler.step)

    ref_net, ref_mod, _ = hand_loop(
        records, config, autocast_dtype=torch.bfloat16, scaler=torch.amp.GradScaler("cpu", init_scale=scale)
    )
    assert_same_state(net, ref_net)
    assert_same_state(handler.modulator, ref_mod)
    no_scaler_net, _, _ = hand_loop(records, config, autocast_dtype=torch.bfloat16)
    assert_same_state(net, no_scaler_net, atol=1e-5)


def test_checkpoint_resume_equals_uninterrupted(tmp_path):
    records = make_records()
    config = {**CONFIG, "guide_dropout": 0.0}  # no RNG use, so the resumed run can be exact
    full_net, full_handler, _, _ = run_handler(records, config, epochs=4)

    def build(epochs, extra):
        net = make_net()
        handler = MultiFairHandler(num_classes=2, num_groups=NUM_GROUPS, config=config)
        trainer = make_trainer(net, make_loader(records), [], max_epochs=epochs)
        save = {"network": net, "optimizer": trainer.optimizer, "multifair": handler, "trainer": trainer}
        for h in extra(save):
            h.attach(trainer)
        handler.attach(trainer)  # after the loader: the state arrives before the modulator is built
        return net, handler, trainer

    _, first_handler, first = build(
        2, lambda save: [CheckpointSaver(str(tmp_path), save, save_final=True, final_filename="mid.pt")]
    )
    torch.manual_seed(123)  # the guide heads are built at Events.STARTED, as in the uninterrupted run
    first.run()
    assert first.state.epoch == 2
    net, handler, second = build(4, lambda save: [CheckpointLoader(str(tmp_path / "mid.pt"), save)])
    torch.manual_seed(999)  # a different guide initialisation: the checkpoint must overwrite it
    second.run()
    assert second.state.epoch == 4
    assert_same_state(net, full_net)
    assert_same_state(handler.modulator, full_handler.modulator)
    assert handler.modulator.guide_optimizer.state_dict()["state"].keys() == (
        full_handler.modulator.guide_optimizer.state_dict()["state"].keys()
    )


def test_attach_is_idempotent_and_counts_one_step_per_iteration():
    records = make_records()
    handler = MultiFairHandler(num_classes=2, num_groups=NUM_GROUPS, config=CONFIG)
    net = make_net()
    trainer = make_trainer(net, make_loader(records), [handler], max_epochs=1)
    handler.attach(trainer)
    handler.attach(trainer)
    torch.manual_seed(123)
    trainer.run()
    assert int(handler.modulator.steps) == 4
    ref_net, _, _ = hand_loop(records, CONFIG, epochs=1)
    assert_same_state(net, ref_net)


def test_reference_preset_and_plain_value_settings():
    records = [
        r for r in make_records() if int(r["group"]) < 2
    ]  # the research code knows groups 0 and 1 only
    net, handler, _, _ = run_handler(records, "reference", epochs=1)
    assert isinstance(handler.modulator, ReferenceModulator)
    assert handler.config.preset == "reference"
    # settings given as plain values (what a bundle YAML provides)
    as_dict = MultiFairHandler(
        num_classes=2, num_groups=3, config={"preset": "paper", "fairness_weight": 0.2}
    )
    assert as_dict.config == MultiFairConfig(preset="paper", fairness_weight=0.2)


class TwoTower(nn.Module):
    """A user's own network: encoders and head at arbitrary attribute paths, positional inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.image_branch = nn.Sequential(TinyEncoder(6, 5))
        self.text_branch = TinyEncoder(4, 3)
        self.head = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 2))

    def forward(self, inputs):
        return self.head(torch.cat([self.image_branch(inputs["img"]), self.text_branch(inputs["txt"])], 1))


def test_user_network_with_attribute_paths_equals_hand_loop():
    records = make_records()
    config = {**CONFIG, "guide_dropout": 0.0}
    torch.manual_seed(0)
    net = TwoTower()
    handler = MultiFairHandler(
        num_classes=2,
        num_groups=NUM_GROUPS,
        encoders={"img": "image_branch.0", "txt": "text_branch"},
        fused_head="head.2",
        config=config,
    )
    torch.manual_seed(123)
    make_trainer(net, make_loader(records), [handler], max_epochs=1).run()

    torch.manual_seed(0)
    ref = TwoTower()
    optimizer = torch.optim.AdamW(ref.parameters(), lr=1e-2)
    torch.manual_seed(123)
    mod = DualLevelGradientModulator(
        {"img": ref.image_branch[0], "txt": ref.text_branch},
        2,
        NUM_GROUPS,
        fused_head=ref.head[2],
        config=config,
    )
    for batch in make_loader(records):
        optimizer.zero_grad()
        logits = ref({m: batch[m] for m in MODALITIES})
        (F.cross_entropy(logits, batch["label"]) + mod(logits, batch["label"], batch["group"])).backward()
        optimizer.step()
    assert_same_state(net, ref)


def test_presence_key_reaches_the_modulator():
    records = make_records()
    for i, r in enumerate(records):
        r["present"] = torch.tensor([True, i % 4 != 0])  # every fourth sample has no text
    config = {**CONFIG, "guide_dropout": 0.0}
    net, handler, _, _ = run_handler(records, config, epochs=1, presence_key="present")
    # oracle: drive the modulator by hand with the same presence mask
    ref = make_net()
    optimizer = torch.optim.AdamW(ref.parameters(), lr=1e-2)
    torch.manual_seed(123)
    mod = DualLevelGradientModulator(
        dict(ref.encoders), 2, NUM_GROUPS, ref.fused_head, config, ref.feature_dims
    )
    for batch in make_loader(records):
        optimizer.zero_grad()
        logits = ref({m: batch[m] for m in MODALITIES})
        aux = mod(logits, batch["label"], batch["group"], batch["present"])
        (F.cross_entropy(logits, batch["label"]) + aux).backward()
        optimizer.step()
    assert_same_state(net, ref)
    _, no_presence, _, _ = run_handler(records, config, epochs=1)
    assert not torch.allclose(
        no_presence.modulator.guides["txt"].output.weight, mod.guides["txt"].output.weight
    )


def test_errors_name_argument_rule_and_value():
    with pytest.raises(MultiFairError, match="num_groups.*>= 2.*1"):
        MultiFairHandler(num_classes=2, num_groups=1)
    with pytest.raises(MultiFairError, match="stats_interval.*>= 1.*0"):
        MultiFairHandler(num_classes=2, num_groups=2, stats_interval=0)
    with pytest.raises(MultiFairError, match="group_labels.*3 entries.*2"):
        MultiFairHandler(num_classes=2, num_groups=3, group_labels=["a", "b"])
    with pytest.raises(MultiFairError, match="unknown `preset`|preset"):
        MultiFairHandler(num_classes=2, num_groups=3, config="papr")
    with pytest.raises(MultiFairError, match="attach"):
        MultiFairHandler(num_classes=2, num_groups=3).state_dict()

    records = make_records(n=12)
    handler = MultiFairHandler(num_classes=2, num_groups=NUM_GROUPS, group_key="grp", config=CONFIG)
    with pytest.raises(MultiFairError, match="`group_key`='grp'.*did you mean 'group'"):
        make_trainer(make_net(), make_loader(records), [handler], max_epochs=1).run()
    handler = MultiFairHandler(num_classes=2, num_groups=NUM_GROUPS, encoders={"img": "no_such", "txt": "x"})
    with pytest.raises(MultiFairError, match=r"encoders\['img'\].*'no_such'.*not a submodule"):
        make_trainer(make_net(), make_loader(records), [handler], max_epochs=1).run()
    plain = nn.Sequential(nn.Linear(2, 2))
    handler = MultiFairHandler(num_classes=2, num_groups=NUM_GROUPS)
    with pytest.raises(MultiFairError, match="no `encoders`"):
        handler.build(plain)


def test_attach_to_an_engine_without_loss_event_is_an_error():
    from ignite.engine import Engine

    with warnings.catch_warnings():
        engine = Engine(lambda e, b: None)
    with pytest.raises(MultiFairError, match="LOSS_COMPLETED"):
        MultiFairHandler(num_classes=2, num_groups=2).attach(engine)
    assert IterationEvents.LOSS_COMPLETED.name == "LOSS_COMPLETED"


def test_group_names_is_the_deprecated_name_of_group_labels():
    with pytest.warns(DeprecationWarning, match="MultiFairHandler: `group_names` is deprecated"):
        handler = MultiFairHandler(num_classes=2, num_groups=2, group_names=["a/b", "c"])
    assert handler.group_labels == ("a/b", "c")
    with pytest.raises(MultiFairError, match="give `group_labels` only"):
        MultiFairHandler(num_classes=2, num_groups=2, group_names=["a", "b"], group_labels=["a", "b"])
