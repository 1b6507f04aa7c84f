"""Project scripts; `scripts.stack` runs the embedded stack as local processes."""
