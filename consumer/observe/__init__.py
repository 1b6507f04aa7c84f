"""Where the consumer is observed: metrics, their endpoint, health, drift, logs."""
