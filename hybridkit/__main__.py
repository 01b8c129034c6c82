"""``python -m hybridkit`` is the ``hybridkit`` command."""
import sys

from .cli import main

sys.exit(main())
