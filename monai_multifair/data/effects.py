"""Measuring the planted effects of the synthetic cohort."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from monai_multifair.data.cohort import _CODE_NAMES, SyntheticCohort
from monai_multifair.errors import MultiFairError

__all__ = ["PlantedEffects", "measure_planted_effects", "radial_profile"]


def radial_profile(images: np.ndarray, bins: int = 12) -> np.ndarray:
    """Mean intensity in ``bins`` rings around the image centre: ``[N, C, S, S]`` -> ``[N, bins]``.

    A hand-made image feature that sees the cup-to-disc ratio (the ring where intensity drops) without
    learning: what a linear model on it achieves is a measure of how much label signal the *pixels*
    carry, group by group.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 4:
        raise MultiFairError(f"expected `images` of shape [N, C, S, S], got {images.shape}")
    size = images.shape[-1]
    axis = (np.arange(size) + 0.5) / size * 2 - 1
    dist = np.sqrt(axis[None, :] ** 2 + axis[:, None] ** 2)
    ring = np.minimum((dist / 1.0 * bins).astype(int), bins)  # corners beyond radius 1 -> bin `bins`
    grey = images.mean(axis=1).reshape(len(images), -1)
    onehot = np.eye(bins + 1)[ring.reshape(-1)][:, :bins]
    return grey @ onehot / onehot.sum(axis=0)


def _group_aucs(y: np.ndarray, score: np.ndarray, race: np.ndarray) -> list[float]:
    out = [float(roc_auc_score(y, score))]
    for g in range(3):
        mask = race == g
        ok = mask.any() and 0 < y[mask].sum() < mask.sum()
        out.append(float(roc_auc_score(y[mask], score[mask])) if ok else float("nan"))
    return out


def _sgd_curve(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, epochs: int, seed: int
) -> list[float]:
    """Test AUC of a logistic model trained by plain SGD (lr 0.05, batch 32, zero init), after each epoch.

    Per batch ``B``: ``w -= lr * X_B^T (sigmoid(X_B w + b) - y_B) / |B|`` and ``b -= lr * mean(sigmoid(.) - y_B)``
    on standardised features.
    """
    scaler = StandardScaler().fit(x_train)
    xt, xv = scaler.transform(x_train), scaler.transform(x_test)
    rng = np.random.default_rng(seed)
    w, b, lr = np.zeros(xt.shape[1]), 0.0, 0.05
    curve = []
    for _ in range(epochs):
        order = rng.permutation(len(xt))
        for start in range(0, len(order), 32):
            idx = order[start : start + 32]
            residual = 1 / (1 + np.exp(-(xt[idx] @ w + b))) - y_train[idx]
            w -= lr * xt[idx].T @ residual / len(idx)
            b -= lr * residual.mean()
        curve.append(float(roc_auc_score(y_test, xv @ w + b)))
    return curve


@dataclass
class PlantedEffects:
    """Measured planted effects of a cohort (see :func:`measure_planted_effects`).

    Attributes:
        group_auc: test AUC of a logistic regression per modality (rows ``fundus``, ``notes``,
            ``vitals``) overall and per race group (columns ``overall``, ``race=Asian``, ...).
        learning_curve: test AUC of a linear model on the *raw* modality (pixels, word counts) trained by
            SGD, after each epoch (rows ``fundus``, ``notes``; columns ``epoch 1`` ...).
    """

    group_auc: pd.DataFrame
    learning_curve: pd.DataFrame

    def to_markdown(self) -> str:
        """Both tables as Markdown."""

        def table(frame: pd.DataFrame) -> str:
            head = "| modality | " + " | ".join(frame.columns) + " |"
            rule = "|---" * (len(frame.columns) + 1) + "|"
            body = [f"| {i} | " + " | ".join(f"{v:.3f}" for v in row) + " |" for i, row in frame.iterrows()]
            return "\n".join([head, rule, *body])

        return (
            "Per-group test AUC (logistic regression per modality):\n\n"
            + table(self.group_auc)
            + "\n\nLearning speed (test AUC of a linear model on raw inputs, plain SGD):\n\n"
            + table(self.learning_curve)
        )


def measure_planted_effects(cohort: SyntheticCohort, *, epochs: int = 3, seed: int = 0) -> PlantedEffects:
    """Measure the cohort's planted effects on its test split (models fitted on its train split).

    - **Per-group informativeness**: AUC of a logistic regression on each modality's features: the
      radial intensity profile of the fundus image (:func:`radial_profile`), binary word counts of the
      note, the standardised vitals. The image-weak group shows a lower fundus AUC, the text-weak
      group a lower notes AUC.
    - **Learning speed**: test AUC after each of ``epochs`` epochs of plain SGD for a linear model on raw
      pixels vs. binary word counts; the notes are near their final AUC after one epoch, the pixels are
      not.

    Args:
        cohort: from :func:`~monai_multifair.data.make_cohort`.
        epochs: epochs of the learning-speed probe (>= 1).
        seed: seed of the probe's batch order.

    Returns:
        :class:`PlantedEffects`.

    Example:
        >>> effects = measure_planted_effects(make_cohort(n_patients=1000))  # doctest: +SKIP
        >>> print(effects.to_markdown())  # doctest: +SKIP
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise MultiFairError(f"expected `epochs` to be an integer >= 1, got {epochs!r}")
    train, test = cohort.split_indices("train"), cohort.split_indices("test")
    frame = cohort.frame
    y_train = frame["label"].to_numpy()[train]
    y_test = frame["label"].to_numpy()[test]
    race_test = frame["race"].to_numpy()[test]
    notes = frame["note"].to_numpy()
    vectorizer = CountVectorizer(binary=True, token_pattern=r"(?u)\b\w+\b").fit(notes[train])
    text_train = vectorizer.transform(notes[train]).toarray().astype(np.float64)
    text_test = vectorizer.transform(notes[test]).toarray().astype(np.float64)
    images = cohort.images.astype(np.float64) / 255.0
    features = {
        "fundus": (radial_profile(images[train]), radial_profile(images[test])),
        "notes": (text_train, text_test),
        "vitals": (cohort.vitals[train], cohort.vitals[test]),
    }
    columns = ["overall", *(f"race={name}" for name in _CODE_NAMES["race"].values())]
    rows = {}
    for modality, (x_train, x_test) in features.items():
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        model.fit(x_train, y_train)
        rows[modality] = _group_aucs(y_test, model.decision_function(x_test), race_test)
    group_auc = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    pixels = images.reshape(len(images), -1)
    curves = {
        "fundus": _sgd_curve(pixels[train], y_train, pixels[test], y_test, epochs, seed),
        "notes": _sgd_curve(text_train, y_train, text_test, y_test, epochs, seed),
    }
    learning = pd.DataFrame.from_dict(
        curves, orient="index", columns=[f"epoch {e + 1}" for e in range(epochs)]
    )
    return PlantedEffects(group_auc=group_auc, learning_curve=learning)
