"""Project scripts; `devstack` runs the embedded stack as local processes."""
