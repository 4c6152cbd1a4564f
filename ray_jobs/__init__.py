"""ray_jobs: the batch backfill of many PLY scenes to SOG on a Ray cluster (driver + actors)."""
