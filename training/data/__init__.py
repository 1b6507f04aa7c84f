"""Data: read and validate a UCI-format file, the held-out split, stage views, exploration."""
