"""The math: shared types, networks, losses and the SAC update (JAX only; imports no other saclab layer)."""
