"""Command-line code: one module per `pgpis` command, registered in pgpis.cli.TOOLS or dispatched by a command."""
