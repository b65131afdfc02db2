"""`python -m sluice …`: the same as the `sluice` command (no console script needed)."""

import sys

from sluice.cli import main

sys.exit(main())
