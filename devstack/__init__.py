"""The embedded stack: the product's real components as local processes on loopback."""
