"""The run engine: a whole training or evaluation run from a :class:`~monai_multifair.config.RunConfig`.

```python
from monai_multifair.config import load_config
from monai_multifair.engine import train, evaluate

result = train(load_config("demo-quick"), "runs/quick")      # MONAI trainer + the config's method + audit
result.metrics["es_auc"], result.files["report_html"]
evaluate(result.config, result.files["best_checkpoint"], "runs/quick/eval")
```

:func:`train` and :func:`evaluate` write a run folder (config, checkpoints, metrics, predictions,
training statistics, audit reports); :func:`compare_runs` tabulates several runs side by side.
"""

import logging

from monai_multifair.engine.loaders import (
    EpochSampler,
    TensorBatchLoader,
    epoch_draw,
    epoch_permutation,
    make_loader,
)
from monai_multifair.engine.outputs import HEADLINE_METRICS, REPORT_FILES
from monai_multifair.engine.run import RunResult, evaluate, train
from monai_multifair.engine.run_folder import RESUMABLE_KEYS, RUN_FILES, latest_checkpoint
from monai_multifair.engine.run_table import compare_runs, comparison_markdown, comparison_table

# engine log records stay silent unless the application configures logging
logging.getLogger("monai_multifair.engine").addHandler(logging.NullHandler())

__all__ = [
    "HEADLINE_METRICS",
    "REPORT_FILES",
    "RESUMABLE_KEYS",
    "RUN_FILES",
    "EpochSampler",
    "RunResult",
    "TensorBatchLoader",
    "compare_runs",
    "comparison_markdown",
    "comparison_table",
    "epoch_draw",
    "epoch_permutation",
    "evaluate",
    "latest_checkpoint",
    "make_loader",
    "train",
]
