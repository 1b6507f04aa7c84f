"""Training job of the student dropout early-warning system.

`python -m training train|evaluate|promote|explore`. Importing this package does no work: every
module only defines things; data, MLflow and models are touched when a command runs.
"""
