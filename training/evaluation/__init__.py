"""Evaluation: held-out metrics per stage, threshold and risk bands, reports, plots, and the
model card."""
