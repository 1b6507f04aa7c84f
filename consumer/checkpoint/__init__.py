"""Where a batch is checkpointed: KCL checkpoints with the KCL's failure modes handled."""
