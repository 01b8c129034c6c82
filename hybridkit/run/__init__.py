"""One ``generate`` run, stage by stage: the pipeline (stage list), unit selection, the plan, the drift
step (motion) and provenance (atomic output folders, manifest)."""
