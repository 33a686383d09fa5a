"""``python -m rcforest.cli``: the command line, as the container's ``train`` and ``serve`` scripts call it."""

import sys

from rcforest.cli import main

sys.exit(main())
