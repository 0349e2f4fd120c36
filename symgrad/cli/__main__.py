"""``python -m symgrad.cli``."""
import sys

from .main import main

sys.exit(main())
