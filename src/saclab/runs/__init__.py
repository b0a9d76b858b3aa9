"""One training run: the online and offline loops, checkpoints, run files and the trained Policy
(imports core, envs, data)."""
