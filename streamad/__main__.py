"""``python -m streamad``: the same command line as ``streamad``."""
import sys

from streamad.cli import main

sys.exit(main())
