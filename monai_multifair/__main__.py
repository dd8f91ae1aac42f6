"""``python -m monai_multifair`` runs the ``multifair`` command line."""

import sys

from monai_multifair.cli import main

sys.exit(main())
