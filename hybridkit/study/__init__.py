"""Studies: many hybrid datasets (a grid over run-config fields) and many sorters, on Dask.

spec.py the study file; expand.py grid -> datasets; runner.py `study run`; scoring.py `study score`;
report.py `study report`. See docs/studies.md.
"""
