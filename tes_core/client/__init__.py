"""``tes``: a command-line client of any TES 1.1 server (events from tes-core servers)."""
