"""python -m hammer: the operator's command line (hammer/cli.py)."""
import sys

from .cli import main

sys.exit(main())
