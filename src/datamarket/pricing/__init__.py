"""Ordered-item and envy-free pricing solvers."""
