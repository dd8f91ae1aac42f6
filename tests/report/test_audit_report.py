"""``AuditReport``: HTML parses with embedded plots and every group; Markdown and JSON content."""

from __future__ import annotations

import base64
import importlib.util
import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from monai_multifair.errors import MultiFairError
from monai_multifair.metrics import UndefinedGroupMetricWarning, equity_scaled_auc
from monai_multifair.report import AuditReport

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.text: list[str] = []
        self.stack: list[str] = []
        self.headings: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag not in ("meta", "br"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> after {self.stack[-3:]}"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self.stack and self.stack[-1] == "h2":
            self.headings.append(data)


def _cohort(n=300, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    y = (rng.random(n) < p).astype(int)
    frame = pd.DataFrame(
        {"race": rng.choice(["Asian", "Black", "White"], n), "sex": rng.choice(["F", "M"], n)}
    )
    return y, p, frame


def _training_stats(steps=20):
    t = np.arange(steps)
    return {
        "step": t * 10,
        "modality_scale/fundus": 1 + 0.1 * np.cos(t),
        "modality_scale/oct": 1 - 0.1 * np.cos(t),
        "group_factor/fundus/Black": np.linspace(1.0, 1.2, steps),
        "group_factor/fundus/White": np.linspace(1.0, 0.9, steps),
        "guide_group_auc/fundus/Black": np.linspace(0.6, 0.71, steps),
        "guide_group_auc/fundus/White": np.linspace(0.6, 0.82, steps),
        "guide_group_auc/oct/Black": np.r_[np.linspace(0.5, 0.66, steps - 1), np.nan],
        "gate": np.linspace(0, 1, steps),
        "loss": np.linspace(1, 0.2, steps),
    }


@pytest.fixture(scope="module")
def report() -> AuditReport:
    y, p, frame = _cohort()
    return AuditReport.from_predictions(
        y, p, sensitive_features=frame, n_boot=50, training_stats=_training_stats(), title="Glaucoma <audit>"
    )


def test_html_is_self_contained_with_plots_and_every_group(report, tmp_path):
    path = tmp_path / "report.html"
    text = report.to_html(path)
    assert path.read_text(encoding="utf-8") == text
    parser = _Collector()
    parser.feed(text)
    parser.close()
    assert parser.stack == []
    # cohort, ROC, calibration (together and per group), selection rate, training curves -- all inline
    # PNGs, no external files
    assert len(parser.images) == 6
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert "http://" not in text and "https://" not in text and "<script" not in text
    body = " ".join(parser.text)
    for race in ("Asian", "Black", "White"):
        for sex in ("F", "M"):
            assert f"race={race} & sex={sex}" in body
    assert "Glaucoma <audit>" in body  # escaped in the markup, intact as text
    assert "<audit>" not in text.replace("&lt;audit&gt;", "")
    assert "Cohort composition" in parser.headings and "Metrics by group" in parser.headings
    assert "Guide AUC by modality and group (smoothed over the last epoch)" in parser.headings


def test_json_content_matches_the_metrics(report):
    y, p, frame = _cohort()
    data = json.loads(report.to_json())
    assert data == report.to_dict()
    assert data["settings"]["n_boot"] == 50 and data["settings"]["ci_quantiles"] == [0.025, 0.975]
    assert data["summary"]["auc"]["estimate"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    es = equity_scaled_auc(y, p, sensitive_features=frame)
    assert data["summary"]["es_auc"]["estimate"] == pytest.approx(es, abs=1e-12)
    lo, hi = data["summary"]["es_auc"]["ci"]
    assert lo < hi
    group = "race=Black & sex=F"
    mask = ((frame["race"] == "Black") & (frame["sex"] == "F")).to_numpy()
    assert data["metrics"]["by_group"][group]["auc"]["estimate"] == pytest.approx(
        roc_auc_score(y[mask], p[mask])
    )
    assert data["metrics"]["by_group"][group]["count"]["estimate"] == mask.sum()
    composition = {g["group"]: g for g in data["cohort"]["groups"]}
    assert composition[group]["n"] == mask.sum() and composition[group]["positives"] == y[mask].sum()
    assert sum(g["share"] for g in data["cohort"]["groups"]) == pytest.approx(1.0)
    assert data["cohort"]["attributes"]["sex"] == frame["sex"].value_counts().sort_index().to_dict()
    assert set(data["roc"]) == {"overall", *composition}
    assert data["roc"][group]["auc"] == pytest.approx(roc_auc_score(y[mask], p[mask]), abs=1e-12)
    assert data["training"]["final_guide_group_auc"]["oct"]["Black"] == pytest.approx(0.66)  # last defined
    assert data["training"]["other_columns"] == ["loss"]
    # no undefined metric and no small group; only flagged intervals are noted, each one marked
    for section in ("summary", "gaps"):
        for name, entry in data[section].items():
            lo, hi = entry["ci"]
            if entry["estimate"] is not None and not lo <= entry["estimate"] <= hi:
                assert "the estimate lies outside its interval" in entry["ci_flag"]
            expected = f"unreliable bootstrap interval of {section} `{name}`: {entry.get('ci_flag')}"
            assert (expected in data["notes"]) == ("ci_flag" in entry)
    assert all(note.startswith("unreliable bootstrap interval of ") for note in data["notes"])


def test_markdown_tables(report):
    text = report.to_markdown()
    assert text.startswith("# Glaucoma <audit>\n")
    for heading in ("## Summary", "## Cohort composition", "## Metrics by group", "## Gaps between groups"):
        assert heading in text
    assert "| race=White & sex=M |" in text
    data = report.to_dict()
    es = data["summary"]["es_auc"]
    mark = " (unreliable)" if es.get("ci_flag") else ""
    assert f"| ES-AUC | {es['estimate']:.3f} [{es['ci'][0]:.3f}, {es['ci'][1]:.3f}]{mark} |" in text
    assert "| modality_scale/fundus |" in text and "| gate |" in text
    assert "Other training statistics present (not shown): loss." in text


def test_undefined_groups_are_reported_not_hidden():
    y, p, frame = _cohort(200, seed=1)
    race = frame["race"].to_numpy().copy()
    race[:5] = "Other"
    y[:5] = 1
    with pytest.warns(UndefinedGroupMetricWarning, match="race=Other"):
        report = AuditReport.from_predictions(
            y, p, sensitive_features=pd.Series(race, name="race"), n_boot=None
        )
    data = report.to_dict()
    assert data["metrics"]["by_group"]["race=Other"]["auc"]["estimate"] is None
    assert "ci" not in data["metrics"]["by_group"]["race=Other"]["auc"]
    assert "race=Other" not in data["roc"]
    assert any("'race=Other' (auc, fpr: no negative samples)" in note for note in data["notes"])
    assert "| race=Other | 5 | undefined |" in report.to_markdown()
    html = report.to_html()
    assert "race=Other" in html and "undefined" in html


def test_from_predictions_file_csv(tmp_path):
    y, p, frame = _cohort(150, seed=2)
    table = frame.assign(label=np.where(y == 1, "yes", "no"), prob=p, patient=np.arange(150) // 2)
    path = tmp_path / "preds.csv"
    table.to_csv(path, index=False)
    report = AuditReport.from_predictions_file(
        path,
        label_col="label",
        score_cols="prob",
        group_cols=["sex"],
        patient_col="patient",
        pos_label="yes",
        n_boot=20,
    )
    data = report.to_dict()
    assert data["title"] == "Fairness audit of preds.csv"
    assert data["settings"]["resampling"] == "patients"
    assert data["summary"]["auc"]["estimate"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_multiclass_file_with_numeric_labels(tmp_path):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 240)
    probs = rng.dirichlet(np.ones(3), 240)
    table = pd.DataFrame(probs, columns=["p0", "p1", "p2"]).assign(
        y=labels, site=rng.choice(["s1", "s2"], 240)
    )
    path = tmp_path / "preds.tsv"
    table.to_csv(path, sep="\t", index=False)
    report = AuditReport.from_predictions_file(
        path, label_col="y", score_cols=["p0", "p1", "p2"], group_cols="site", pos_label="2", n_boot=None
    )
    data = report.to_dict()
    assert data["settings"]["n_classes"] == 3 and data["settings"]["pos_label"] == 2
    assert data["summary"]["auc"]["estimate"] == pytest.approx(
        roc_auc_score(labels, probs, multi_class="ovr")
    )
    assert "one-vs-rest" in report.to_markdown()


def test_file_errors_are_clear(tmp_path):
    path = tmp_path / "preds.csv"
    pd.DataFrame({"label": [0, 1], "prob": [0.2, 0.7], "race": ["a", "b"]}).to_csv(path, index=False)
    with pytest.raises(
        MultiFairError, match=r"column 'rcae' \(from `group_cols`\) not found.*did you mean 'race'"
    ):
        AuditReport.from_predictions_file(path, label_col="label", score_cols="prob", group_cols="rcae")
    with pytest.raises(MultiFairError, match="does not exist"):
        AuditReport.from_predictions_file(
            tmp_path / "nope.csv", label_col="label", score_cols="prob", group_cols="race"
        )
    (tmp_path / "preds.xlsx").write_text("x")
    with pytest.raises(MultiFairError, match="expected a predictions file ending in"):
        AuditReport.from_predictions_file(
            tmp_path / "preds.xlsx", label_col="l", score_cols="s", group_cols="g"
        )


@pytest.mark.skipif(
    importlib.util.find_spec("pyarrow") is not None or importlib.util.find_spec("fastparquet") is not None,
    reason="a Parquet engine is installed",
)
def test_parquet_without_engine_is_a_clear_error(tmp_path):
    path = tmp_path / "preds.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(MultiFairError, match="needs pyarrow or fastparquet.*pip install pyarrow"):
        AuditReport.from_predictions_file(path, label_col="l", score_cols="s", group_cols="g")


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="needs pyarrow")
def test_parquet_round_trip(tmp_path):
    y, p, frame = _cohort(100, seed=4)
    path = tmp_path / "preds.parquet"
    frame.assign(label=y, prob=p).to_parquet(path)
    report = AuditReport.from_predictions_file(
        path, label_col="label", score_cols="prob", group_cols="race", n_boot=None
    )
    assert report.to_dict()["settings"]["n_samples"] == 100


def test_bad_title_and_probabilities():
    with pytest.raises(MultiFairError, match="non-empty string `title`"):
        AuditReport.from_predictions([0, 1], [0.2, 0.8], sensitive_features=["a", "b"], title=" ")
    with pytest.raises(MultiFairError, match="apply a sigmoid or softmax"):
        AuditReport.from_predictions([0, 1], [-2.0, 3.0], sensitive_features=["a", "b"])
