"""The ``nwb`` writer (writer): chunked traces (chunks), session metadata (metadata), the units table
(units) and the nwbinspector gate (inspection)."""
