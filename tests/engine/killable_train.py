"""A ``multifair`` command whose atomic file writes are slowed down (not a test module).

Every rename that completes an atomic write (a checkpoint, its record, a report...) waits
``MULTIFAIR_TEST_SLOW_WRITE`` seconds first, so that a kill sent at a random moment often lands while a
file is being written. Used by tests/engine/test_engine_kill.py.
"""

from __future__ import annotations

import os
import sys
import time

from monai_multifair import atomic_io
from monai_multifair.cli import main

_commit = atomic_io._commit
_delay = float(os.environ.get("MULTIFAIR_TEST_SLOW_WRITE", "0.3"))


def slow_commit(temporary, target):
    time.sleep(_delay)  # the temporary is complete; the target still holds the previous version
    _commit(temporary, target)


atomic_io._commit = slow_commit

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
