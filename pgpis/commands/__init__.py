"""Command-line tools registered in :data:`pgpis.cli.TOOLS` (application code; libraries never import it)."""
