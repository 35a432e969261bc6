"""Exceptions shared by every layer.

Library code raises :class:`DatamarketError` subclasses with a message that names the offending field;
the CLI turns them into one line and exit code 2, the service into a JSON 422 (the portal into its
error page).

The hierarchy says what went wrong, so a caller catches exactly what it can handle::

    DatamarketError (ValueError)
    ├── InvalidInputError          bad input, naming the field: the caller's to fix
    │   ├── InvalidMarketError     a market, participant or dataset violates a precondition
    │   ├── ConfigurationError     a setting is invalid (backend, service settings, lease timings)
    │   │   └── LeaseSettingsError     lease timings that cannot work (heartbeat >= lease...)
    │   └── UploadError            an uploaded file cannot be read, or breaks a limit
    └── InfeasibleError            the requested equilibrium, allocation or pricing does not exist

>>> issubclass(UploadError, InvalidInputError) and issubclass(InvalidMarketError, InvalidInputError)
True
>>> str(LeaseSettingsError("heartbeat_s", "must be below lease_s"))
'heartbeat_s: must be below lease_s'
"""

from __future__ import annotations


class DatamarketError(ValueError):
    """Base class of the errors this package raises on bad input."""


class InvalidInputError(DatamarketError):
    """Bad input, naming the offending ``field``: the base of every error a caller can fix."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class InvalidMarketError(InvalidInputError):
    """A market, participant or dataset violates a precondition (NaN, negative cost, empty set...)."""


class ConfigurationError(InvalidInputError):
    """A setting is invalid: an execution backend, a service setting, an environment variable."""


class LeaseSettingsError(ConfigurationError):
    """Round-lease timings that cannot work (a heartbeat no shorter than the lease, a non-positive time)."""


class UploadError(InvalidInputError):
    """An uploaded file cannot be read as a dataset, or breaks a size, shape or format limit."""


class InfeasibleError(DatamarketError):
    """The requested equilibrium, allocation or pricing does not exist for this market."""
