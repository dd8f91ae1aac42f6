"""``compare.yaml``: which methods, which data sets, how many seeds and tuning trials.

```yaml
methods:                       # names of the method registry, or mappings (default: every training method)
  - erm                        # the baseline (``baseline``) must be among them
  - multifair                  # tuned over its plugin's search space
  - {name: multifair, label: multifair-paper, options: {preset: paper}, tune: false}   # a fixed arm
  - groupdro
datasets:                      # names of the suite (``multifair compare --list``), or mappings
  - cohort
  - {name: mine, config: my_run.yaml, overrides: [trainer.epochs=20]}
seeds: 20                      # final runs of the selected configuration per method and data set
trials: 20                     # tuning trials per tuned method and data set (the equal budget)
selection: {metric: es_auc, auc_guard: 0.01}
storage: null                  # an Optuna storage URL; default: a journal file in the output folder
baseline: erm
level: 0.95
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monai_multifair.comparison.suite import SuiteDataset, get_suite_dataset
from monai_multifair.config.validation import dump_yaml, load_yaml_text
from monai_multifair.errors import MultiFairError, close_match_hint
from monai_multifair.plugins import get_method_spec, list_methods

__all__ = [
    "SELECTION_METRICS",
    "CompareConfig",
    "DatasetEntry",
    "MethodEntry",
    "SelectionRule",
    "load_compare_config",
    "registered_training_methods",
]

#: The validation criteria a tuned arm's configuration can be chosen by (:class:`SelectionRule`).
SELECTION_METRICS = ("es_auc", "worst_group_auc", "auc", "distance_to_optimal")


def _mapping(value: Any, path: str, keys: Sequence[str]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise MultiFairError(f"compare config key `{path}`: expected a name or a mapping, got {value!r}")
    for key in value:
        if key not in keys:
            raise MultiFairError(
                f"unknown compare config key `{path}.{key}`{close_match_hint(str(key), keys)}; known: "
                f"{', '.join(keys)}"
            )
    return dict(value)


def _int(value: Any, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MultiFairError(f"compare config key `{path}`: expected an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class MethodEntry:
    """One arm of the comparison.

    Attributes:
        name: the training method's registry name (``multifair plugins``).
        label: the arm's name in tables (default ``name``); unique.
        options: fixed options (the base that tuned options override).
        tune: tune over the method's search space (``False``: a fixed arm, ``options`` as given).
    """

    name: str
    label: str
    options: dict[str, Any] = field(default_factory=dict)
    tune: bool = True

    @classmethod
    def parse(cls, value: Any, path: str) -> MethodEntry:
        """The entry of ``value`` (a name or a mapping); the name is checked against the method registry by
        :meth:`check_registered` (which loads the plugins, and with them torch)."""
        if isinstance(value, str):
            value = {"name": value}
        data = _mapping(value, path, ("name", "label", "options", "tune"))
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise MultiFairError(f"compare config key `{path}.name`: expected a method name, got {name!r}")
        options = data.get("options") or {}
        if not isinstance(options, Mapping):
            raise MultiFairError(f"compare config key `{path}.options`: expected a mapping, got {options!r}")
        tune = data.get("tune", True)
        if not isinstance(tune, bool):
            raise MultiFairError(f"compare config key `{path}.tune`: expected true or false, got {tune!r}")
        label = data.get("label", name)
        if not isinstance(label, str) or not label or any(c.isspace() or c in "/\\" for c in label):
            raise MultiFairError(
                f"compare config key `{path}.label`: expected a name without spaces or slashes, got {label!r}"
            )
        return cls(name=name, label=label, options=dict(options), tune=tune)

    def check_registered(self, path: str) -> None:
        """Raise unless :attr:`name` is a training method of the registry (``multifair plugins``)."""
        try:
            get_method_spec(self.name, "training")
        except MultiFairError as err:
            raise MultiFairError(f"compare config key `{path}.name`: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "options": dict(self.options), "tune": self.tune}


#: How the final runs of a data set differ (see :mod:`~monai_multifair.comparison.tasks`).
PROTOCOLS: tuple[str, ...] = ("seeds", "cv", "holdout")


@dataclass(frozen=True)
class DatasetEntry:
    """One data set of the comparison: a suite entry, or a run config of the user's.

    Attributes:
        name: the data set's name in tables; unique.
        suite: the suite entry (``None`` for a user config).
        config: a user config: a preset name or YAML path (``None`` for a suite entry).
        overrides: ``key.path=value`` overrides applied to the data set's config.
        protocol: ``"seeds"`` (final runs differ by seed), ``"cv"`` (repeated k-fold) or ``"holdout"``
            (a stratified hold-out re-drawn per seed); the last two need a source whose rows can be
            re-split (see :mod:`~monai_multifair.comparison.tasks`).
        folds: folds of the ``"cv"`` protocol.
    """

    name: str
    suite: SuiteDataset | None = None
    config: str | None = None
    overrides: tuple[str, ...] = ()
    protocol: str = "seeds"
    folds: int = 0

    @classmethod
    def parse(cls, value: Any, path: str, base: Path | None = None) -> DatasetEntry:
        if isinstance(value, str) and value.lower().endswith((".yaml", ".yml")):
            config = value if base is None or Path(value).is_absolute() else str(base / value)
            if not Path(config).is_file():
                raise MultiFairError(f"compare config key `{path}`: run config {config!r} does not exist")
            name = Path(value).stem.replace(" ", "_")
            return cls(name=name, config=config)
        if isinstance(value, str):
            suite = get_suite_dataset(value)
            return cls(name=value, suite=suite, protocol=suite.protocol, folds=suite.folds)
        data = _mapping(value, path, ("name", "config", "overrides", "protocol", "folds"))
        name = data.get("name")
        if not isinstance(name, str) or not name or any(c.isspace() or c in "/\\" for c in name):
            raise MultiFairError(
                f"compare config key `{path}.name`: expected a name without spaces, got {name!r}"
            )
        overrides = data.get("overrides") or []
        if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
            raise MultiFairError(
                f"compare config key `{path}.overrides`: expected a list of key.path=value strings, got {overrides!r}"
            )
        source = data.get("config")
        suite = None
        if source is None:
            suite = get_suite_dataset(name)
        elif not isinstance(source, str):
            raise MultiFairError(
                f"compare config key `{path}.config`: expected a preset or YAML path, got {source!r}"
            )
        elif (
            base is not None and source.lower().endswith((".yaml", ".yml")) and not Path(source).is_absolute()
        ):
            source = str(base / source)
        protocol = data.get("protocol", suite.protocol if suite else "seeds")
        if protocol not in PROTOCOLS:
            raise MultiFairError(
                f"compare config key `{path}.protocol`: expected one of {', '.join(map(repr, PROTOCOLS))}, got "
                f"{protocol!r}{close_match_hint(str(protocol), PROTOCOLS)}"
            )
        folds = data.get(
            "folds", suite.folds if suite and protocol == suite.protocol else 5 if protocol == "cv" else 0
        )
        if protocol == "cv":
            _int(folds, f"{path}.folds", 2)
        return cls(name, suite, source, tuple(overrides), protocol, int(folds))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "protocol": self.protocol}
        if self.config is not None:
            out["config"] = self.config
        if self.overrides:
            out["overrides"] = list(self.overrides)
        if self.protocol == "cv":
            out["folds"] = self.folds
        return out


@dataclass(frozen=True)
class SelectionRule:
    """How the tuned configuration is chosen from a study's trials (validation metrics only).

    Among the trials whose validation AUC is at least the best validation AUC of the study's trials
    minus ``auc_guard`` (the *AUC guard*), the one with the highest validation ``metric`` wins (ties: the
    earlier trial). The guard keeps a configuration that buys its fairness with a visibly worse model
    from being chosen.

    ``"distance_to_optimal"`` is MEDFAIR's criterion (Zong et al., ICLR 2023): the smallest Euclidean
    distance of a trial's per-group validation AUCs, each divided by the best AUC of that group among the
    eligible trials, to the all-ones utopia point
    (:func:`~monai_multifair.comparison.pareto.distance_to_optimal`). MEDFAIR shows that the selection
    criterion changes the fairness outcome significantly; the leaderboard states the one used.

    Attributes:
        metric: ``"es_auc"`` (default), ``"worst_group_auc"``, ``"auc"`` or ``"distance_to_optimal"``.
        auc_guard: the AUC margin, >= 0 (default 0.01, one point of AUC).
    """

    metric: str = "es_auc"
    auc_guard: float = 0.01

    @classmethod
    def parse(cls, value: Any, path: str) -> SelectionRule:
        data = _mapping(value or {}, path, ("metric", "auc_guard"))
        metric = data.get("metric", cls.metric)
        if metric not in SELECTION_METRICS:
            raise MultiFairError(
                f"compare config key `{path}.metric`: expected one of {', '.join(SELECTION_METRICS)}, got {metric!r}"
            )
        guard = data.get("auc_guard", cls.auc_guard)
        if isinstance(guard, bool) or not isinstance(guard, (int, float)) or not guard >= 0:
            raise MultiFairError(
                f"compare config key `{path}.auc_guard`: expected a number >= 0, got {guard!r}"
            )
        return cls(metric, float(guard))


def registered_training_methods() -> list[str]:
    """The names of every training method of the registry (``multifair plugins``), sorted: the arms of a
    comparison that names none, so a plugin's training method joins the default comparison.

    Loads the plugins, and with them torch.
    """
    return [spec.name for spec in list_methods("training")]


def _check_settings(
    datasets: Sequence[DatasetEntry], seeds: Any, trials: Any, level: Any, storage: Any
) -> None:
    """The checks of a :class:`CompareConfig` that need neither its methods nor the registry."""
    if not datasets:
        raise MultiFairError("compare config key `datasets`: expected at least one data set")
    names = [d.name for d in datasets]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise MultiFairError(
            f"compare config key `datasets`: repeated name(s) {repeated}; give each its own `name`"
        )
    _int(seeds, "seeds", 2)
    _int(trials, "trials", 1)
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise MultiFairError(f"compare config key `level`: expected a number in (0, 1), got {level!r}")
    for entry in datasets:
        if entry.protocol == "cv" and seeds % entry.folds:
            raise MultiFairError(
                f"compare config key `seeds`: data set {entry.name!r} is cross-validated with {entry.folds} "
                f"folds, so `seeds` (the number of test folds) must be a multiple of {entry.folds}, got {seeds}"
            )
    if storage is not None and (not isinstance(storage, str) or not storage):
        raise MultiFairError(f"compare config key `storage`: expected an Optuna storage URL, got {storage!r}")


@dataclass(frozen=True)
class CompareConfig:
    """A whole comparison (see the module docstring for the YAML form).

    Attributes:
        methods: the arms, baseline included.
        datasets: the data sets.
        seeds: final runs per arm and data set (a multiple of ``folds`` for ``"cv"`` data sets).
        trials: tuning trials per tuned arm and data set.
        selection: the selection rule.
        storage: an Optuna storage URL (``None``: ``optuna.journal`` in the output folder).
        baseline: the label of the arm that differences are taken against.
        level: confidence level of the intervals.
        quick: tiny sizes for a smoke run (no claims).
    """

    methods: tuple[MethodEntry, ...]
    datasets: tuple[DatasetEntry, ...]
    seeds: int = 20
    trials: int = 20
    selection: SelectionRule = field(default_factory=SelectionRule)
    storage: str | None = None
    baseline: str = "erm"
    level: float = 0.95
    quick: bool = False

    def __post_init__(self) -> None:
        if not self.methods:
            raise MultiFairError("compare config key `methods`: expected at least one method")
        _check_settings(self.datasets, self.seeds, self.trials, self.level, self.storage)
        labels = [m.label for m in self.methods]
        repeated = sorted({n for n in labels if labels.count(n) > 1})
        if repeated:
            raise MultiFairError(
                f"compare config key `methods`: repeated name(s) {repeated}; give each a `label`"
            )
        if self.baseline not in labels:
            raise MultiFairError(
                f"compare config key `baseline`: {self.baseline!r} is not among the methods {labels}"
                f"{close_match_hint(self.baseline, labels)}"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: Path | None = None) -> CompareConfig:
        """Validate a parsed ``compare.yaml`` (``base``: the folder relative config paths start from)."""
        data = _mapping(
            data,
            "",
            ("methods", "datasets", "seeds", "trials", "selection", "storage", "baseline", "level", "quick"),
        )
        methods = data.get("methods")
        datasets = data.get("datasets")
        for key, value in (("methods", methods), ("datasets", datasets)):
            if not isinstance(value, list) and not (key == "methods" and "methods" not in data):
                raise MultiFairError(f"compare config key `{key}`: expected a list, got {value!r}")
        fields: dict[str, Any] = {}
        if methods is not None:
            fields["methods"] = tuple(MethodEntry.parse(v, f"methods[{i}]") for i, v in enumerate(methods))
        fields["datasets"] = tuple(
            DatasetEntry.parse(v, f"datasets[{i}]", base) for i, v in enumerate(datasets)
        )
        fields["selection"] = SelectionRule.parse(data.get("selection"), "selection")
        for key in ("seeds", "trials", "storage", "baseline", "level", "quick"):
            if key in data:
                fields[key] = data[key]
        if not isinstance(fields.get("quick", False), bool):
            raise MultiFairError(
                f"compare config key `quick`: expected true or false, got {fields['quick']!r}"
            )
        # the registry loads the plugins (and torch): it is read last, so every other error answers without it
        if methods is None:
            defaults = {f.name: f.default for f in dataclasses.fields(cls)}
            _check_settings(
                *(fields.get(k, defaults[k]) for k in ("datasets", "seeds", "trials", "level", "storage"))
            )
            names = registered_training_methods()
            fields["methods"] = tuple(MethodEntry.parse(v, f"methods[{i}]") for i, v in enumerate(names))
        config = cls(**fields)
        for i, method in enumerate(config.methods):
            method.check_registered(f"methods[{i}]")
        return config

    def replace(self, **changes: Any) -> CompareConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "methods": [m.to_dict() for m in self.methods],
            "datasets": [d.to_dict() for d in self.datasets],
            "seeds": self.seeds,
            "trials": self.trials,
            "selection": {"metric": self.selection.metric, "auc_guard": self.selection.auc_guard},
            "storage": self.storage,
            "baseline": self.baseline,
            "level": self.level,
            "quick": self.quick,
        }

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())


def load_compare_config(path: str | Path) -> CompareConfig:
    """Read and validate a ``compare.yaml``.

    Raises:
        MultiFairError: a missing file, invalid YAML, or a bad key (named with its path and the rule).
    """
    path = Path(path)
    if not path.is_file():
        raise MultiFairError(f"compare config {str(path)!r} does not exist")
    document = load_yaml_text(path.read_text(encoding="utf-8"), str(path))
    if not isinstance(document, Mapping):
        raise MultiFairError(f"{path}: expected a mapping at the top level, got {type(document).__name__}")
    return CompareConfig.from_dict(document, base=path.parent)
