"""``python -m rcforest``: the command line."""

import sys

from rcforest.cli import main

sys.exit(main())
