"""One comparison worker for the shared-store tests, run as its own process:

    python tests/comparison/_store_worker.py SPEC.json

SPEC holds ``config`` (a compare config document), ``output``, ``store``, ``lease_s``, ``log`` (a file
that receives ``start KEY`` before and ``done KEY`` after every run this worker trains) and
``hang_at`` (optional: the worker's run number, from 1, at which it stops forever before training, as
a machine that hangs or is about to be killed).
"""

from __future__ import annotations

import json
import sys
import time

from monai_multifair.comparison import CompareConfig, compare
from monai_multifair.comparison import tasks as task_module


def main(path: str) -> None:
    with open(path, encoding="utf-8") as handle:
        spec = json.load(handle)
    real = task_module.execute
    count = 0

    def execute(task):
        nonlocal count
        count += 1
        with open(spec["log"], "a", encoding="utf-8") as log:
            log.write(f"start {task['key']}\n")
        if spec.get("hang_at") == count:
            while True:
                time.sleep(60)
        row = real(task)
        with open(spec["log"], "a", encoding="utf-8") as log:
            log.write(f"done {task['key']}\n")
        return row

    task_module.execute = execute
    compare(
        CompareConfig.from_dict(spec["config"]),
        spec["output"],
        store=spec["store"],
        lease_s=spec["lease_s"],
        progress=False,
        log=lambda line: print(line, flush=True),
    )


if __name__ == "__main__":
    main(sys.argv[1])
