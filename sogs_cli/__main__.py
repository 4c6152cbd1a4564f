"""`python -m sogs_cli` runs the `sogs-cluster` command."""
import sys

from sogs_cli.main import main

sys.exit(main())
