"""`python -m stream_dsl`: the same command line as `stream-dsl`."""

import sys

from stream_dsl.cli.main import main

sys.exit(main())
