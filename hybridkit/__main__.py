"""``python -m hybridkit`` is the ``hybridkit`` command."""
import sys

from hybridkit.cli import main

sys.exit(main())
