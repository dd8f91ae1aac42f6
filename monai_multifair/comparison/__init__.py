"""``multifair compare``: which fairness method to use, measured on a suite of data sets.

```python
from monai_multifair.comparison import CompareConfig, compare

config = CompareConfig.from_dict(
    {"methods": ["erm", "multifair", "groupdro"], "datasets": ["cohort", "ad_data"], "seeds": 20, "trials": 20}
)
results = compare(config, "runs/compare", jobs=2)       # resumable: call again to continue
results["ranks"]["es_auc"]["multifair"]["mean_rank"]
```

Equal tuning budget per method (Optuna, the method plugin's search space, selection on validation
ES-AUC with an AUC guard; the test split is never given to the tuning), final runs of the chosen
configuration over seeds, paired differences against the baseline with t intervals (corrected
resampled t for cross-validated data sets), mean ranks across data sets, an append-only store of runs,
and ``leaderboard.html`` / ``leaderboard.md`` / ``results.json``. :data:`SUITE` lists the data sets
known by name.
"""

from typing import TYPE_CHECKING

from monai_multifair._lazy import lazy_exports
from monai_multifair.comparison.compare_config import (
    CompareConfig,
    DatasetEntry,
    MethodEntry,
    SelectionRule,
    load_compare_config,
)
from monai_multifair.comparison.suite import SUITE, SuiteDataset, get_suite_dataset

# The runner, the store, the statistics and the tuning import torch, scipy or Optuna: their names are
# imported on first use (PEP 562), so that a bad compare.yaml or flag is reported without loading them.
_LAZY = {
    "compare": "monai_multifair.comparison.runner",
    "summarize": "monai_multifair.comparison.leaderboard",
    "write_outputs": "monai_multifair.comparison.leaderboard",
    "MIN_SEEDS": "monai_multifair.comparison.statistics",
    "RunStore": "monai_multifair.comparison.run_store",
    "SQLRunStore": "monai_multifair.comparison.run_store",
    "open_run_store": "monai_multifair.comparison.run_store",
    "config_hash": "monai_multifair.comparison.run_store",
    "corrected_resampled_t_interval": "monai_multifair.comparison.statistics",
    "mean_ranks": "monai_multifair.comparison.statistics",
    "paired_t_interval": "monai_multifair.comparison.statistics",
    "t_interval": "monai_multifair.comparison.statistics",
    "select_trial": "monai_multifair.comparison.tuning",
}

if TYPE_CHECKING:
    from monai_multifair.comparison.leaderboard import summarize, write_outputs
    from monai_multifair.comparison.run_store import RunStore, SQLRunStore, config_hash, open_run_store
    from monai_multifair.comparison.runner import compare
    from monai_multifair.comparison.statistics import (
        MIN_SEEDS,
        corrected_resampled_t_interval,
        mean_ranks,
        paired_t_interval,
        t_interval,
    )
    from monai_multifair.comparison.tuning import select_trial


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


__all__ = [
    "MIN_SEEDS",
    "SUITE",
    "CompareConfig",
    "DatasetEntry",
    "MethodEntry",
    "RunStore",
    "SQLRunStore",
    "SelectionRule",
    "SuiteDataset",
    "compare",
    "config_hash",
    "corrected_resampled_t_interval",
    "get_suite_dataset",
    "load_compare_config",
    "mean_ranks",
    "open_run_store",
    "paired_t_interval",
    "select_trial",
    "summarize",
    "t_interval",
    "write_outputs",
]
