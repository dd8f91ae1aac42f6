"""``multifair compare``: which fairness method to use, measured on a suite of data sets.

```python
from monai_multifair.benchmark import CompareConfig, compare

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

from monai_multifair.benchmark.compare_config import (
    CompareConfig,
    DatasetEntry,
    MethodEntry,
    SelectionRule,
    load_compare_config,
)
from monai_multifair.benchmark.comparison import compare
from monai_multifair.benchmark.leaderboard import summarize, write_outputs
from monai_multifair.benchmark.run_store import RunStore, SQLRunStore, config_hash, open_run_store
from monai_multifair.benchmark.statistics import (
    corrected_resampled_t_interval,
    mean_ranks,
    paired_t_interval,
    t_interval,
)
from monai_multifair.benchmark.suite import SUITE, SuiteDataset, get_suite_dataset
from monai_multifair.benchmark.tuning import select_trial

__all__ = [
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
