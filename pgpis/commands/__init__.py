"""Command-line tools registered in `pgpis.cli.TOOLS`, one module per command."""
