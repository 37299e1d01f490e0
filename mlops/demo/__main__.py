"""``python -m mlops.demo`` (``make demo``)."""

import sys

from mlops.demo.story import main

sys.exit(main())
