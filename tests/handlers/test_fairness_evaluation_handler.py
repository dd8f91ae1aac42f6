"""FairnessEvaluationHandler on a real SupervisedEvaluator == sklearn / fairlearn on the same predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from _workflow import MODALITIES, make_loader, make_net, make_records
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from monai.engines import SupervisedEvaluator
from monai.handlers import CheckpointSaver
from sklearn.metrics import roc_auc_score
from torch import nn

from monai_multifair.errors import MultiFairError
from monai_multifair.handlers import FairnessEvaluationHandler, MultimodalPrepareBatch
from monai_multifair.metrics import UndefinedGroupMetricWarning

NAMES = ["a", "b", "c"]


def evaluate(net, records, handlers, batch_size=16, **kwargs):
    evaluator = SupervisedEvaluator(
        device="cpu",
        val_data_loader=make_loader(records, batch_size=batch_size),
        network=net,
        prepare_batch=MultimodalPrepareBatch(MODALITIES),
        val_handlers=handlers,
        **kwargs,
    )
    evaluator.run()
    return evaluator


def predictions(net, records):
    net.eval()
    with torch.no_grad():
        logits = net({m: torch.stack([r[m] for r in records]) for m in MODALITIES})
    p = torch.softmax(logits, 1)[:, 1].numpy()
    y = np.array([int(r["label"]) for r in records])
    g = np.array([int(r["group"]) for r in records])
    return p, y, g


def oracle(p, y, g, threshold=0.5):
    """sklearn AUCs, the ES-AUC formula, and fairlearn's DPD / DEOdds on the same predictions."""
    yhat = (p >= threshold).astype(int)
    auc = roc_auc_score(y, p)
    group_auc = {NAMES[k]: roc_auc_score(y[g == k], p[g == k]) for k in range(3)}
    features = pd.Series([NAMES[k] for k in g], name="group")
    return {
        "auc": auc,
        "es_auc": auc / (1 + sum(abs(auc - v) for v in group_auc.values())),
        "worst_group_auc": min(group_auc.values()),
        "dpd": demographic_parity_difference(y, yhat, sensitive_features=features),
        "deodds": equalized_odds_difference(y, yhat, sensitive_features=features),
        **{f"group_auc/{k}": v for k, v in group_auc.items()},
    }, MetricFrame(
        metrics={"tpr": true_positive_rate, "fpr": false_positive_rate, "selection_rate": selection_rate},
        y_true=y,
        y_pred=yhat,
        sensitive_features=features,
    )


@pytest.fixture
def trained_net():
    """A slightly trained net, so that predictions straddle the threshold."""
    net = make_net(seed=3)
    records = make_records(n=96, seed=5)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-2)
    for batch in make_loader(records, batch_size=32):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net({m: batch[m] for m in MODALITIES}), batch["label"]).backward()
        optimizer.step()
    return net.eval()


def test_metrics_equal_sklearn_and_fairlearn(trained_net, tmp_path):
    records = make_records(n=75, seed=1)  # 5 batches of 16, the last one short
    handler = FairnessEvaluationHandler(
        group_labels=NAMES, prefix="val_", output_dir=tmp_path, threshold=0.45
    )
    evaluator = evaluate(trained_net, records, [handler])
    p, y, g = predictions(trained_net, records)
    expected, frame = oracle(p, y, g, threshold=0.45)
    assert expected["dpd"] > 0 and expected["deodds"] > 0  # the fairness gaps are not trivially 0
    for name, value in expected.items():
        assert evaluator.state.metrics[f"val_{name}"] == pytest.approx(value, abs=1e-6), name
    by_group = handler.metric_frame.by_group
    for column in ("tpr", "fpr", "selection_rate"):
        np.testing.assert_allclose(
            by_group.loc[NAMES, column].to_numpy(float), frame.by_group[column].to_numpy(float)
        )
    np.testing.assert_allclose(by_group.loc[NAMES, "count"].to_numpy(float), [25, 25, 25])
    assert handler.metric_frame.overall["auc"] == pytest.approx(expected["auc"])

    # the files of the epoch hold the same frame and summary
    table = pd.read_csv(tmp_path / "fairness_epoch0001.csv", index_col="group")
    assert list(table.index) == [*NAMES, "overall"]
    np.testing.assert_allclose(table.loc[NAMES, "auc"], [expected[f"group_auc/{k}"] for k in NAMES])
    saved = json.loads((tmp_path / "fairness_epoch0001.json").read_text())
    assert saved["summary"]["es_auc"] == pytest.approx(expected["es_auc"])
    assert saved["by_group"]["overall"]["auc"] == pytest.approx(expected["auc"])


def test_buffers_reset_each_epoch(trained_net):
    records = make_records(n=48, seed=2)
    handler = FairnessEvaluationHandler(group_labels=NAMES)
    evaluator = SupervisedEvaluator(
        device="cpu",
        val_data_loader=make_loader(records, batch_size=16),
        network=trained_net,
        prepare_batch=MultimodalPrepareBatch(MODALITIES),
        val_handlers=[handler],
    )
    evaluator.run()
    first = dict(evaluator.state.metrics)
    with torch.no_grad():
        trained_net.fused_head.weight.mul_(-1.0)  # a different model: its epoch alone must be reported
    evaluator.run(global_epoch=2)
    expected, _ = oracle(*predictions(trained_net, records))
    assert evaluator.state.metrics["auc"] == pytest.approx(expected["auc"])
    assert evaluator.state.metrics["auc"] != pytest.approx(first["auc"])
    assert handler.metric_frame.by_group.loc["a", "count"] == 16


def test_key_metric_selects_checkpoints_on_es_auc(trained_net, tmp_path):
    records = make_records(n=48, seed=2)
    handler = FairnessEvaluationHandler(group_labels=NAMES, prefix="val_")
    # the saver is listed first: with the key metric the handler's values exist when it runs
    saver = CheckpointSaver(
        str(tmp_path), {"net": trained_net}, save_key_metric=True, key_metric_name="val_es_auc"
    )
    evaluator = evaluate(
        trained_net, records, [saver, handler], key_val_metric={"val_es_auc": handler.key_metric("es_auc")}
    )
    expected, _ = oracle(*predictions(trained_net, records))
    assert evaluator.state.best_metric == pytest.approx(expected["es_auc"])
    assert evaluator.state.metrics["val_worst_group_auc"] == pytest.approx(expected["worst_group_auc"])
    saved = list(tmp_path.glob("net_key_metric=*.pt"))
    assert len(saved) == 1 and f"{expected['es_auc']:.4f}" in saved[0].name
    with pytest.raises(MultiFairError, match="unknown fairness metric 'es-auc'.*did you mean 'es_auc'"):
        handler.key_metric("es-auc")


def test_one_class_group_is_undefined_not_fair(trained_net):
    records = make_records(n=48, seed=2)
    for r in records:
        if int(r["group"]) == 2:
            r["label"] = torch.tensor(1)  # group c has positives only: its AUC is undefined
    handler = FairnessEvaluationHandler(num_groups=3)
    with pytest.warns(UndefinedGroupMetricWarning, match="'2'"):
        evaluator = evaluate(trained_net, records, [handler])
    metrics = evaluator.state.metrics
    assert np.isnan(metrics["group_auc/2"])
    p, y, g = predictions(trained_net, records)
    defined = [roc_auc_score(y[g == k], p[g == k]) for k in (0, 1)]
    auc = roc_auc_score(y, p)
    assert metrics["worst_group_auc"] == pytest.approx(min(defined))
    assert metrics["es_auc"] == pytest.approx(auc / (1 + sum(abs(auc - v) for v in defined)))


def test_sigmoid_single_logit_and_positive_class_zero():
    records = make_records(n=40, seed=4)
    torch.manual_seed(0)

    class OneLogit(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(10, 1)

        def forward(self, inputs):
            return self.linear(torch.cat([inputs["img"], inputs["txt"]], 1))

    net = OneLogit()
    handler = FairnessEvaluationHandler(activation="sigmoid")
    evaluator = evaluate(net, records, [handler])
    x = torch.stack([torch.cat([r["img"], r["txt"]]) for r in records])
    with torch.no_grad():
        p = torch.sigmoid(net.linear(x))[:, 0].numpy()
    y = np.array([int(r["label"]) for r in records])
    assert evaluator.state.metrics["auc"] == pytest.approx(roc_auc_score(y, p))

    net2 = make_net(seed=1).eval()
    handler0 = FairnessEvaluationHandler(positive_class=0)
    evaluator = evaluate(net2, records, [handler0])
    p1, y, _ = predictions(net2, records)
    assert evaluator.state.metrics["auc"] == pytest.approx(roc_auc_score(1 - y, 1 - p1))


def test_errors_name_argument_rule_and_value(trained_net):
    with pytest.raises(MultiFairError, match="unknown `activation` 'softmx'.*did you mean 'softmax'"):
        FairnessEvaluationHandler(activation="softmx")
    with pytest.raises(MultiFairError, match="group_labels.*num_groups=2.*3"):
        FairnessEvaluationHandler(num_groups=2, group_labels=NAMES)
    with pytest.raises(MultiFairError, match="threshold.*1.5"):
        FairnessEvaluationHandler(threshold=1.5)
    records = make_records(n=16)
    with pytest.raises(MultiFairError, match=r"group ids in \[0, 2\).*got 2"):
        evaluate(trained_net, records, [FairnessEvaluationHandler(num_groups=2)])
    with pytest.raises(MultiFairError, match="`group_key`='sex'.*keys:"):
        evaluate(trained_net, records, [FairnessEvaluationHandler(group_key="sex")])
    with pytest.raises(MultiFairError, match="activation='sigmoid'.*got shape"):
        evaluate(trained_net, records, [FairnessEvaluationHandler(activation="sigmoid")])


def test_predictions_equal_a_manual_inference_loop(trained_net):
    records = make_records(n=75, seed=1)  # 5 batches of 16, the last one short
    handler = FairnessEvaluationHandler(group_labels=NAMES, threshold=0.45)
    with pytest.raises(MultiFairError, match="no predictions yet"):
        handler.predictions()
    evaluate(trained_net, records, [handler])
    p, y, g = predictions(trained_net, records)
    table = handler.predictions()
    assert list(table.columns) == ["label", "score", "group", "group_label"]
    np.testing.assert_allclose(table["score"].to_numpy(), p, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(table["label"].to_numpy(), y)
    np.testing.assert_array_equal(table["group"].to_numpy(), g)
    assert table["group_label"].astype(str).tolist() == [NAMES[k] for k in g]
    table.loc[0, "score"] = -1.0  # a copy: the handler keeps its own
    assert handler.predictions().loc[0, "score"] == pytest.approx(p[0], abs=1e-6)


def test_audit_report_from_the_evaluator_equals_the_manual_report(trained_net):
    from monai_multifair.report import AuditReport

    records = make_records(n=75, seed=1)
    handler = FairnessEvaluationHandler(group_labels=NAMES, threshold=0.45)
    evaluator = evaluate(trained_net, records, [handler])
    p, y, g = predictions(trained_net, records)
    settings = {"n_boot": 50, "n_permutations": 50, "random_state": 0}
    with pytest.warns(UndefinedGroupMetricWarning):  # groups below 30 samples are named
        from_engine = AuditReport.from_evaluator(evaluator, **settings).to_dict()
        from_handler = AuditReport.from_evaluator(handler, **settings).to_dict()
        manual = AuditReport.from_predictions(
            y,
            p.astype(np.float64),
            sensitive_features=pd.DataFrame({"group": [NAMES[k] for k in g]}),
            threshold=0.45,
            **settings,
        ).to_dict()
    assert from_engine["settings"]["threshold"] == 0.45
    for report in (from_engine, from_handler):
        for section in ("summary", "metrics", "gaps", "disparity_tests", "degenerate"):
            np.testing.assert_equal(
                json.loads(json.dumps(report[section]), parse_float=lambda s: round(float(s), 5)),
                json.loads(json.dumps(manual[section]), parse_float=lambda s: round(float(s), 5)),
            )
    # with the handler's key metric attached too (an ignite Metric answers any attribute), still one handler
    keyed = FairnessEvaluationHandler(group_labels=NAMES, threshold=0.45)
    with_key = evaluate(trained_net, records, [keyed], key_val_metric={"es_auc": keyed.key_metric()})
    with pytest.warns(UndefinedGroupMetricWarning):
        keyed_report = AuditReport.from_evaluator(with_key, **settings).to_dict()
    assert keyed_report["summary"]["es_auc"]["estimate"] == pytest.approx(
        manual["summary"]["es_auc"]["estimate"]
    )
    with pytest.raises(MultiFairError, match="exactly one FairnessEvaluationHandler.*found 0"):
        AuditReport.from_evaluator(evaluate(trained_net, records, []))
    with pytest.raises(MultiFairError, match="FairnessEvaluationHandler or the MONAI evaluator.*got int"):
        AuditReport.from_evaluator(3)


def test_degenerate_model_is_flagged_in_summary_and_files(trained_net, tmp_path):
    records = make_records(n=48, seed=2)
    handler = FairnessEvaluationHandler(group_labels=NAMES, threshold=0.999, output_dir=tmp_path)
    evaluate(trained_net, records, [handler])
    p, _, _ = predictions(trained_net, records)
    assert p.max() < 0.999  # nothing crosses the threshold
    assert handler.summary["dpd"] == 0.0  # a clean 0 ...
    assert set(handler.summary["degenerate"]) == {"overall", *NAMES}  # ... that is flagged
    assert handler.summary["degenerate"]["overall"].startswith("no positive predictions")
    saved = json.loads((tmp_path / "fairness_epoch0001.json").read_text())
    assert saved["degenerate"] == handler.summary["degenerate"]


def test_group_labels_with_a_slash_and_the_deprecated_group_names(trained_net):
    """A label's ``/`` becomes ``|`` in the metric name only; ``group_names`` still works, with a warning."""
    records = make_records(n=48, seed=3)
    labels = ["race=A/B", "race=C", "race=D"]
    handler = FairnessEvaluationHandler(group_labels=labels, prefix="val_")
    metrics = evaluate(trained_net, records, [handler]).state.metrics
    p, y, g = predictions(trained_net, records)
    expected, _ = oracle(p, y, g, threshold=0.5)
    assert metrics["val_group_auc/race=A|B"] == pytest.approx(expected["group_auc/" + NAMES[0]])
    assert list(handler.metric_frame.by_group.index[:3]) == labels  # the frame keeps the labels as given
    with pytest.warns(DeprecationWarning, match="`group_names` is deprecated, write `group_labels`"):
        old = FairnessEvaluationHandler(group_names=labels)
    assert old.group_labels == tuple(labels)
    with pytest.raises(
        MultiFairError, match="give `group_labels` only; `group_names` is its deprecated name"
    ):
        FairnessEvaluationHandler(group_names=labels, group_labels=labels)
