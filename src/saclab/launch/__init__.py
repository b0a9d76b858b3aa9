"""Many runs: jobs, the local process pool, Ray, grids and sweeps, the study (imports runs and below)."""
