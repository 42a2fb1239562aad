"""`python -m pipeline.train ...` = `ganpipe train ...`, so `accelerate launch -m pipeline.train`
works."""

import sys

from pipeline.cli import main

sys.exit(main(["train", *sys.argv[1:]]))
