"""Where a batch is captured: its outcomes kept in object storage before the checkpoint."""
