"""Container entry: ``python -m serving --model-name N --storage-uri URI --public-key PEM [--http-port P]``."""

import sys

from serving.server import main_single

sys.exit(main_single())
