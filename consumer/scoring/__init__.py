"""Where a record is validated and scored: the validator, the model call, one batch's path."""
