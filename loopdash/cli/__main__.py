"""``python -m loopdash.cli``: the ``loopdash`` command."""

import sys

from loopdash.cli import main

sys.exit(main())
