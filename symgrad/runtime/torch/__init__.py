"""The torch target's runtime pieces: each stands in for the shared piece of its name, or is the target's own."""
