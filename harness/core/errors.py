"""Exceptions the CLI turns into one clear message (no traceback) and a non-zero exit."""


class HarnessError(Exception):
    """Base class for errors that carry a user-facing message."""


class ConfigError(HarnessError):
    """An invalid config file, unknown key, or bad command-line value."""


class DataError(HarnessError):
    """Missing, corrupt or malformed task data."""
