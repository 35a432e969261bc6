"""Learning curves, gain functions, scikit-learn model utilities and customised training."""
