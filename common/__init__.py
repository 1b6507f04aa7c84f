"""What the training job, the consumer and the tools agree on (see README.md)."""
