"""Exceptions shared by every layer.

Library code raises :class:`DatamarketError` subclasses with a message that names the offending field;
the CLI turns them into one line and exit code 2, the service into a JSON 422.
"""

from __future__ import annotations


class DatamarketError(ValueError):
    """Base class of the errors this package raises on bad input."""


class InvalidMarketError(DatamarketError):
    """A market, participant or dataset violates a precondition (NaN, negative cost, empty set...)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class InfeasibleError(DatamarketError):
    """The requested equilibrium, allocation or pricing does not exist for this market."""
