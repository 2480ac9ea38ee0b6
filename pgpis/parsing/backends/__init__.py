"""Built-in human-parser backends (imported only when :func:`pgpis.parsing.load_parser` builds one)."""
