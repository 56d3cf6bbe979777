"""``python -m ipabs`` runs the command line."""

import sys

from ipabs.cli import main

sys.exit(main())
