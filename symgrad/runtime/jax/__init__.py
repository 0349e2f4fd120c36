"""The jax target's runtime pieces: each stands in for the shared piece of its name."""
