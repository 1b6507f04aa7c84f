"""Model search: cross-validated candidates (LR, RF, SVM, Optuna-tuned XGBoost), their refit on
the training part, and the seed's 7-feature baseline."""
