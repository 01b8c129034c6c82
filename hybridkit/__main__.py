"""``python -m hybridkit`` is the ``hybridkit`` command."""
import sys

try:
    from hybridkit.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python imports the command: no traceback
    print("hybridkit: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
