"""`pgpis app`: an interactive Gradio demo of a trained FPDM or TruePose checkpoint (see docs/app.md).

Gradio is an optional dependency (``pip install -e ".[app]"``); importing this package does not import it.
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home


def main(argv=None) -> int:
    """Entry point of `pgpis app` (registered in :data:`pgpis.cli.TOOLS`)."""
    from pgpis.app.cli import main as cli_main

    return cli_main(argv)


__all__ = ["main"]
