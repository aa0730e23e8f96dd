"""`python -m stream_dsl`: the same command line as `stream-dsl`."""

import sys

from stream_dsl.cli import main

sys.exit(main())
