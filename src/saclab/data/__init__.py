"""Transitions at rest: the replay buffer, the HDF5 Dataset, Minari io and collection (imports core, envs)."""
