"""Assistant Factory engine: everything the pages and the CLI do lives here (no streamlit imports)."""

__version__ = "0.1.0"
