"""Command-line applications of pgpis (`pgpis <command>`), on top of the library packages."""
