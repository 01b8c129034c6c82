"""The ``legacy`` writer (writer) and its ground-truth tables (tables)."""
