"""The ``nwb`` source reader (reader) and remote streaming (remote)."""
