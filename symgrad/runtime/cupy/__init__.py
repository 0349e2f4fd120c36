"""The CuPy modules' own runtime pieces: each stands in for the shared piece of its name."""
