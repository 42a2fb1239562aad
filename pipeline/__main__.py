"""`python -m pipeline ...` = `ganpipe ...`, so that `accelerate launch -m pipeline train ...`
works."""

import sys

from pipeline.cli import main

sys.exit(main(sys.argv[1:]))
