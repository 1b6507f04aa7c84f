"""Features: the feature-engine pipeline, partial-record augmentation, feature selection."""
