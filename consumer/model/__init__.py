"""Where the model is loaded: registry, cache, contract, self-test, hot reload."""
