"""``python -m workpath_operator``: run the Kubernetes operator (the same as ``workpath operator``)."""

from __future__ import annotations

import sys

from workpath_operator import cli

if __name__ == "__main__":
    sys.exit(cli.operator_main())
