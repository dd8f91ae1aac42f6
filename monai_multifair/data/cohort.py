"""The embedded default cohort: a deterministic synthetic glaucoma-screening data set.

Each patient has a fundus-like image (a bright optic disc with a brighter cup; the cup-to-disc ratio
carries the label), a clinical note (intraocular pressure, visual field, family history, nerve-fibre
layer, plus unrelated phrases), tabular vitals and demographics (sex, race, age band, ethnicity,
language, marital status). Codes follow the FairVLMed layout so the cohort can be written out with
:meth:`SyntheticCohort.write_fairvlmed` and read back by :class:`~monai_multifair.data.FairVLMedDataset`.

Planted effects (measured by :func:`measure_planted_effects`; numbers in ``docs/howto/data.md``):

1. **The text learns faster than the image.** The notes name their findings in words ("elevated",
   "arcuate defect"), so a linear model on word counts is accurate after one pass, while the image
   signal is a geometric property (the cup radius) spread over many noisy pixels.
2. **The image signal is weaker for one group** (``image_weak_group``, race code 1 by default): lower
   contrast, blur and more noise, as with media opacity.
3. **The notes are less informative for another group** (``text_weak_group``, race code 2 by
   default): findings agree with the diagnosis far less often and the pressure barely differs.

So a fused model that leans on the fast text modality under-serves the text-weak group, where the image
alone does better: there is headroom for balancing. The effects are synthetic and say nothing about real
populations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monai_multifair.data.attributes import FAIRVLMED_CODES, AttributeCoding
from monai_multifair.data.in_memory import InMemoryDataset
from monai_multifair.data.npz_dataset import select_modalities
from monai_multifair.errors import MultiFairError, close_match_hint
from monai_multifair.plugins import DataSourceSpec, hookimpl

__all__ = [
    "COHORT_ATTRIBUTES",
    "COHORT_MODALITIES",
    "VITALS",
    "CohortSpec",
    "SyntheticCohort",
    "make_cohort",
]

#: Modality name -> kind of the cohort's samples.
COHORT_MODALITIES: dict[str, str] = {"fundus": "image", "notes": "text", "vitals": "tabular"}
#: Columns of the ``vitals`` modality, in order.
VITALS: tuple[str, ...] = ("age", "systolic_bp", "diastolic_bp", "heart_rate", "bmi", "hba1c")
#: Sensitive attributes available in the cohort (FairVLMed codes; ``age_band`` 0 <50, 1 50-64, 2 >=65).
COHORT_ATTRIBUTES: tuple[str, ...] = ("race", "gender", "age_band", "ethnicity", "language", "maritalstatus")
_CODE_NAMES: dict[str, dict[int, str]] = {**FAIRVLMED_CODES, "age_band": {0: "<50", 1: "50-64", 2: ">=65"}}
SPLITS: tuple[str, ...] = ("train", "val", "test")
_FOLDERS = {"train": "Training", "val": "Validation", "test": "Test"}
_USE = {"train": "training", "val": "validation", "test": "test"}


@dataclass(frozen=True)
class CohortSpec:
    """Settings of the synthetic cohort (the YAML section ``data.synthetic`` uses these names).

    Attributes:
        n_patients: number of patients (one image and one note each), >= 30.
        image_size: side of the square fundus image in pixels, >= 16.
        channels: 1 (grey) or 3 (colour fundus tint).
        prevalence: fraction with glaucoma, in (0, 1).
        group_prevalence: fraction with glaucoma in race groups 0, 1, 2 (three numbers in (0, 1)), used
            instead of ``prevalence`` when given (group-dependent prevalence); ``None``: ``prevalence``.
        group_fractions: fractions of race codes 0, 1, 2 (three non-negative numbers summing to 1).
        image_weak_group: race code whose images have low contrast, blur and more noise (``None``: none).
        text_weak_group: race code whose notes are less informative (``None``: none).
        image_noise: standard deviation of the pixel noise of ordinary images.
        weak_image_noise: pixel noise in the image-weak group.
        weak_image_contrast: contrast of the image-weak group's images (1 = ordinary), in (0, 1].
        note_reliability: probability that a note finding (visual field, family history, nerve-fibre
            layer) is abnormal for a glaucoma patient and normal otherwise, in (0.5, 1].
        weak_note_reliability: the same for the text-weak group, in [0.5, 1].
        split_fractions: train / val / test fractions (three positive numbers summing to 1).
        unknown_rate: fraction of unknown (``-1``) ethnicity, language and marital status, in [0, 0.5).
        seed: the random seed; the cohort is a pure function of the spec.
    """

    n_patients: int = 3000
    image_size: int = 32
    channels: int = 1
    prevalence: float = 0.4
    group_prevalence: tuple[float, float, float] | None = None
    group_fractions: tuple[float, float, float] = (0.5, 0.3, 0.2)
    image_weak_group: int | None = 1
    text_weak_group: int | None = 2
    image_noise: float = 0.04
    weak_image_noise: float = 0.12
    weak_image_contrast: float = 0.4
    note_reliability: float = 0.8
    weak_note_reliability: float = 0.56
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    unknown_rate: float = 0.03
    seed: int = 0

    def __post_init__(self) -> None:
        def fail(name: str, rule: str) -> None:
            raise MultiFairError(f"expected `{name}` {rule}, got {getattr(self, name)!r}")

        def is_int(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        if not is_int(self.n_patients) or self.n_patients < 30:
            fail("n_patients", "to be an integer >= 30")
        if not is_int(self.image_size) or self.image_size < 16:
            fail("image_size", "to be an integer >= 16")
        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            fail("channels", "to be 1 or 3")
        if not 0 < self.prevalence < 1:
            fail("prevalence", "in (0, 1)")
        if self.group_prevalence is not None:
            values = tuple(self.group_prevalence)
            if len(values) != 3 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1 for v in values
            ):
                fail("group_prevalence", "to be three numbers in (0, 1) or None")
            object.__setattr__(self, "group_prevalence", tuple(float(v) for v in values))
        for name in ("group_fractions", "split_fractions"):
            values = tuple(getattr(self, name))
            positive = (
                all(v > 0 for v in values) if name == "split_fractions" else all(v >= 0 for v in values)
            )
            if len(values) != 3 or not positive or abs(sum(values) - 1) > 1e-6:
                fail(
                    name,
                    "to be three "
                    + ("positive" if name == "split_fractions" else "non-negative")
                    + " numbers summing to 1",
                )
            object.__setattr__(self, name, tuple(float(v) for v in values))
        for name in ("image_weak_group", "text_weak_group"):
            value = getattr(self, name)
            if value is not None and (not is_int(value) or value not in (0, 1, 2)):
                fail(name, "to be a race code 0, 1, 2 or None")
        for name in ("image_noise", "weak_image_noise"):
            if not 0 <= getattr(self, name) <= 1:
                fail(name, "in [0, 1]")
        if not 0 < self.weak_image_contrast <= 1:
            fail("weak_image_contrast", "in (0, 1]")
        if not 0.5 < self.note_reliability <= 1:
            fail("note_reliability", "in (0.5, 1]")
        if not 0.5 <= self.weak_note_reliability <= 1:
            fail("weak_note_reliability", "in [0.5, 1]")
        if not 0 <= self.unknown_rate < 0.5:
            fail("unknown_rate", "in [0, 0.5)")
        if not is_int(self.seed) or self.seed < 0:
            fail("seed", "to be an integer >= 0")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The settings' names (the YAML keys of ``data.synthetic``)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes: Any) -> CohortSpec:
        """A copy with ``changes`` (validated; unknown names are an error with a close match)."""
        for key in changes:
            if key not in self.field_names():
                raise MultiFairError(
                    f"unknown cohort setting {key!r}; known: {', '.join(self.field_names())}"
                    + close_match_hint(key, self.field_names())
                )
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------------------------------------
# generation
_VF_ABNORMAL = (
    "superior arcuate defect",
    "inferior arcuate defect",
    "nasal step",
    "paracentral scotoma",
)
_VF_NORMAL = ("full visual field", "visual field within normal limits", "reliable normal visual field")
_NOISE = (
    "Patient reports occasional dry eye symptoms.",
    "Refraction stable since last visit.",
    "Mild nuclear sclerosis both eyes.",
    "Wears reading glasses.",
    "Denies eye pain or redness.",
    "Blood pressure medication unchanged.",
    "Follow up in six months.",
    "Artificial tears as needed.",
    "Lids and lashes normal.",
    "Anterior chamber deep and quiet.",
    "Patient is a retired teacher.",
    "Discussed screening results with the patient.",
)


def _images(spec: CohortSpec, rng: np.random.Generator, cdr: np.ndarray, race: np.ndarray) -> np.ndarray:
    """uint8 images ``[N, C, S, S]``: background, optic disc, cup (radius = cdr * disc radius), vessels."""
    n, size = len(cdr), spec.image_size
    axis = (np.arange(size) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    cx = rng.normal(0.0, 0.06, n)[:, None, None]
    cy = rng.normal(0.0, 0.06, n)[:, None, None]
    disc_r = rng.uniform(0.48, 0.60, n)[:, None, None]
    cup_r = cdr[:, None, None] * disc_r
    dist = np.sqrt((xx[None] - cx) ** 2 + (yy[None] - cy) ** 2)
    edge = 2.0 / size
    disc = 1 / (1 + np.exp(-(disc_r - dist) / edge))
    cup = 1 / (1 + np.exp(-(cup_r - dist) / edge))
    vignette = 1 - 0.35 * (xx**2 + yy**2)[None]
    structure = 0.22 * vignette + 0.33 * disc + 0.35 * cup
    # vessels: dark lines through the disc centre at random angles
    for _ in range(2):
        angle = rng.uniform(0, np.pi, n)[:, None, None]
        across = np.abs(-(xx[None] - cx) * np.sin(angle) + (yy[None] - cy) * np.cos(angle))
        structure = structure - 0.10 * np.exp(-((across / (1.5 / size)) ** 2)) * (dist > cup_r)
    contrast = np.ones(n)
    noise = np.full(n, spec.image_noise)
    blur = np.zeros(n, dtype=bool)
    if spec.image_weak_group is not None:
        weak = race == spec.image_weak_group
        contrast[weak] = spec.weak_image_contrast
        noise[weak] = spec.weak_image_noise
        blur = weak
    mean = structure.mean(axis=(1, 2), keepdims=True)
    image = mean + contrast[:, None, None] * (structure - mean)
    if blur.any():  # out of focus: a 3x3 box blur, twice
        for _ in range(2):
            padded = np.pad(image[blur], ((0, 0), (1, 1), (1, 1)), mode="edge")
            image[blur] = sum(padded[:, i : i + size, j : j + size] for i in range(3) for j in range(3)) / 9
    image = image + rng.uniform(-0.05, 0.05, n)[:, None, None]  # illumination
    image = image[:, None] + noise[:, None, None, None] * rng.standard_normal((n, 1, size, size))
    if spec.channels == 3:
        tint = np.array([1.0, 0.72, 0.45])[None, :, None, None]
        image = image * tint + np.array([0.12, 0.04, 0.0])[None, :, None, None]
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)


def _notes(
    spec: CohortSpec,
    rng: np.random.Generator,
    label: np.ndarray,
    race: np.ndarray,
    age: np.ndarray,
    gender: np.ndarray,
) -> tuple[list[str], np.ndarray]:
    """Clinical notes and the intraocular pressure (mmHg) they report."""
    n = len(label)
    reliability = np.full(n, spec.note_reliability)
    if spec.text_weak_group is not None:
        reliability[race == spec.text_weak_group] = spec.weak_note_reliability
    # P(abnormal finding) = r for glaucoma, 1 - r otherwise
    p_abnormal = np.where(label == 1, reliability, 1 - reliability)
    findings = rng.random((n, 3)) < p_abnormal[:, None]
    iop = 15.0 + 14.0 * (reliability - 0.5) * label + rng.normal(0, 3.0, n)
    iop = np.clip(np.round(iop), 8, 40).astype(int)
    vf_pick = rng.integers(0, len(_VF_ABNORMAL), n)
    vf_normal_pick = rng.integers(0, len(_VF_NORMAL), n)
    noise_count = rng.integers(1, 4, n)
    noise_pick = [rng.choice(len(_NOISE), size=k, replace=False) for k in noise_count]
    order = rng.random(n) < 0.5
    notes = []
    for i in range(n):
        who = f"{int(age[i])} year old {'male' if gender[i] == 1 else 'female'}"
        pressure = f"IOP {iop[i]} mmHg, {'elevated' if iop[i] > 21 else 'within normal range'}."
        field = (
            f"Visual field: {_VF_ABNORMAL[vf_pick[i]]}."
            if findings[i, 0]
            else f"Visual field: {_VF_NORMAL[vf_normal_pick[i]]}."
        )
        family = "Family history of glaucoma." if findings[i, 1] else "No family history of glaucoma."
        rnfl = "OCT shows RNFL thinning." if findings[i, 2] else "OCT RNFL thickness normal."
        clinical = [pressure, field, rnfl, family] if order[i] else [field, pressure, family, rnfl]
        extra = [_NOISE[k] for k in noise_pick[i]]
        notes.append(" ".join([f"{who} seen for glaucoma screening.", *clinical, *extra]))
    return notes, iop


def _categorical(rng: np.random.Generator, n: int, probs: Sequence[float], unknown_rate: float) -> np.ndarray:
    values = rng.choice(len(probs), size=n, p=np.asarray(probs) / np.sum(probs)).astype(np.int64)
    values[rng.random(n) < unknown_rate] = -1
    return values


def make_cohort(spec: CohortSpec | None = None, **changes: Any) -> SyntheticCohort:
    """Generate the synthetic glaucoma-screening cohort (deterministic for a given spec).

    Args:
        spec: the settings (default :class:`CohortSpec()`).
        **changes: settings to change, e.g. ``n_patients=600`` (validated).

    Returns:
        A :class:`SyntheticCohort`.

    Example:
        >>> cohort = make_cohort(n_patients=300, seed=1)
        >>> len(cohort.frame), cohort.images.shape
        (300, (300, 1, 32, 32))
    """
    spec = (spec or CohortSpec()).replace(**changes) if changes else (spec or CohortSpec())
    rng = np.random.default_rng(spec.seed)
    n = spec.n_patients
    draw = rng.random(n)
    race = rng.choice(3, size=n, p=spec.group_fractions).astype(np.int64)
    prevalence = spec.prevalence if spec.group_prevalence is None else np.asarray(spec.group_prevalence)[race]
    label = (draw < prevalence).astype(np.int64)
    gender = rng.integers(0, 2, n).astype(np.int64)
    age = np.clip(np.round(rng.normal(60 + 5 * label, 10)), 30, 90).astype(np.int64)
    age_band = np.digitize(age, [50, 65]).astype(np.int64)
    ethnicity = _categorical(rng, n, (0.88, 0.12), spec.unknown_rate)
    language = _categorical(rng, n, (0.8, 0.12, 0.08), spec.unknown_rate)
    marital = _categorical(rng, n, (0.55, 0.2, 0.12, 0.1, 0.03), spec.unknown_rate)
    # cup-to-disc ratio: the image's signal
    cdr = np.clip(rng.normal(0.40 + 0.17 * label, 0.09), 0.15, 0.85)
    images = _images(spec, rng, cdr, race)
    notes, iop = _notes(spec, rng, label, race, age, gender)
    vitals = np.stack(
        [
            age.astype(np.float64),
            rng.normal(128 + 4 * label, 14),
            rng.normal(80 + 1.5 * label, 9),
            rng.normal(72, 10, n),
            rng.normal(27.5, 4.5, n),
            rng.normal(5.7 + 0.15 * label, 0.6),
        ],
        axis=1,
    ).astype(np.float32)
    fractions = np.cumsum(spec.split_fractions)[:2]
    cut = np.round(fractions * n).astype(int)
    split = np.empty(n, dtype=object)
    order = rng.permutation(n)
    split[order[: cut[0]]] = "train"
    split[order[cut[0] : cut[1]]] = "val"
    split[order[cut[1] :]] = "test"
    frame = pd.DataFrame(
        {
            "id": [f"patient_{i:05d}" for i in range(n)],
            "split": split,
            "label": label,
            "race": race,
            "gender": gender,
            "age": age,
            "age_band": age_band,
            "ethnicity": ethnicity,
            "language": language,
            "maritalstatus": marital,
            "cup_to_disc": cdr,
            "iop": iop,
            "note": notes,
        }
    )
    return SyntheticCohort(spec=spec, frame=frame, images=images, vitals=vitals)


@dataclass
class SyntheticCohort:
    """A generated cohort (see :func:`make_cohort`).

    Attributes:
        spec: the settings it was generated from.
        frame: one row per patient: ``id``, ``split`` (train/val/test), ``label`` (glaucoma 0/1),
            demographics (``race``, ``gender``, ``age``, ``age_band``, ``ethnicity``, ``language``,
            ``maritalstatus``; FairVLMed codes, ``-1`` unknown), latent signals ``cup_to_disc`` and
            ``iop``, and the ``note``.
        images: ``uint8 [N, C, S, S]`` fundus images (float [0, 1] once in a sample).
        vitals: ``float32 [N, 6]``, columns :data:`VITALS`.
    """

    spec: CohortSpec
    frame: pd.DataFrame
    images: np.ndarray
    vitals: np.ndarray

    def split_indices(self, split: str) -> np.ndarray:
        """Row indices of ``split`` (``"train"``, ``"val"`` or ``"test"``)."""
        if split not in SPLITS:
            raise MultiFairError(
                f"expected `split` to be one of {', '.join(SPLITS)}, got {split!r}"
                + close_match_hint(str(split), SPLITS)
            )
        return np.flatnonzero(self.frame["split"].to_numpy() == split)

    def dataset(
        self,
        split: str,
        *,
        modalities: Sequence[str] | None = ("fundus", "notes"),
        attributes: Sequence[str] = ("race",),
        unknown: str = "error",
        coding: AttributeCoding | None = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> InMemoryDataset:
        """One split as a :class:`~monai_multifair.data.InMemoryDataset`.

        Samples: ``"fundus"`` float ``[C, S, S]``, ``"notes"`` ``str``, ``"vitals"`` float ``[6]`` (the
        requested modalities), ``"label"``, one key per attribute, ``"group"``, ``"id"``.

        Args:
            split: ``"train"``, ``"val"`` or ``"test"``.
            modalities: any of ``"fundus"``, ``"notes"``, ``"vitals"`` (``None``: all three).
            attributes: any of :data:`COHORT_ATTRIBUTES` (default ``("race",)``, the planted groups).
            unknown: policy for ``-1`` (only ethnicity, language and marital status have unknowns).
            coding: the training split's coding, so group ids agree across splits.
            transform: applied to each sample dict.
        """
        rows = self.split_indices(split)
        chosen = select_modalities(modalities, tuple(COHORT_MODALITIES), "synthetic cohort")
        attributes = [attributes] if isinstance(attributes, str) else list(attributes)
        for attr in attributes:
            if attr not in COHORT_ATTRIBUTES:
                raise MultiFairError(
                    f"unknown sensitive attribute {attr!r} for the synthetic cohort; known: "
                    f"{', '.join(COHORT_ATTRIBUTES)}" + close_match_hint(attr, COHORT_ATTRIBUTES)
                )
        sources = {
            "fundus": ("image", self.images[rows]),
            "notes": ("text", self.frame["note"].to_numpy()[rows].tolist()),
            "vitals": ("tabular", self.vitals[rows]),
        }
        metadata = self.frame.iloc[rows][["id", "label", *attributes]].reset_index(drop=True)
        return InMemoryDataset(
            metadata,
            modalities={m: sources[m] for m in chosen},
            attributes=attributes,
            unknown=unknown,
            coding=coding,
            code_names=_CODE_NAMES,
            transform=transform,
            name=f"synthetic[{split}]",
        )

    def datasets(self, **kwargs: Any) -> dict[str, InMemoryDataset]:
        """``{"train", "val", "test"}`` datasets sharing the training split's coding (``kwargs`` as in :meth:`dataset`)."""
        train = self.dataset("train", **kwargs)
        kwargs.pop("coding", None)
        return {
            "train": train,
            **{s: self.dataset(s, coding=train.coding, **kwargs) for s in ("val", "test")},
        }

    def write_fairvlmed(self, root: str | Path) -> Path:
        """Write the cohort in the FairVLMed layout, readable by :class:`~monai_multifair.data.FairVLMedDataset`.

        Creates ``root/{Training,Validation,Test}/data_XXXXX.npz`` (keys ``slo_fundus`` uint8 ``[S, S]``
        or ``[S, S, 3]``, ``glaucoma``, ``age``, ``gender``, ``race``, ``ethnicity``, ``language``,
        ``maritalstatus``, ``note``, ``vitals`` float32 ``[6]``) and ``root/data_summary.csv`` with
        columns ``filename``, ``use``, ``note``. Existing files of the same names are overwritten.

        Returns:
            ``root`` as a :class:`~pathlib.Path`.
        """
        root = Path(root)
        rows = []
        for split in SPLITS:
            folder = root / _FOLDERS[split]
            folder.mkdir(parents=True, exist_ok=True)
            for i in self.split_indices(split):
                record = self.frame.iloc[i]
                image = self.images[i]
                image = image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))
                filename = f"data_{i + 1:05d}.npz"
                np.savez(
                    folder / filename,
                    slo_fundus=image,
                    glaucoma=np.int64(record["label"]),
                    age=np.float64(record["age"]),
                    gender=np.int64(record["gender"]),
                    race=np.int64(record["race"]),
                    ethnicity=np.int64(record["ethnicity"]),
                    language=np.int64(record["language"]),
                    maritalstatus=np.int64(record["maritalstatus"]),
                    note=np.str_(record["note"]),
                    vitals=self.vitals[i],
                )
                rows.append({"filename": filename, "use": _USE[split], "note": record["note"]})
        pd.DataFrame(rows).to_csv(root / "data_summary.csv", index=False)
        return root


def _synthetic_split(
    options: CohortSpec, split: str, prepared: SyntheticCohort, **common: Any
) -> InMemoryDataset:
    return prepared.dataset(split, **common)


@hookimpl
def multifair_data_sources() -> list[DataSourceSpec]:
    """The data source ``synthetic``: this cohort, generated from the section ``data.synthetic``."""
    return [
        DataSourceSpec(
            name="synthetic",
            description="the embedded synthetic glaucoma cohort (fundus image, note, vitals), generated",
            build_split=_synthetic_split,
            modalities=dict(COHORT_MODALITIES),
            options=CohortSpec,
            default_modalities=("fundus", "notes"),
            attributes=COHORT_ATTRIBUTES,
            prepare=lambda options, attributes: make_cohort(options),
            split="generated",
        )
    ]
