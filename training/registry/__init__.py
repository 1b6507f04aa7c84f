"""Registry: the contract, packaging, registration, the champion gate, MLflow tracking and
access, and the code of the registered model itself (risk_model.py)."""
