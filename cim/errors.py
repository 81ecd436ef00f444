"""The one exception root of cim and its user-facing subclasses.

Domain code raises these with a message that is safe to show a user; only ``api/errors.py``
maps them to HTTP status codes and only ``cli/`` maps them to exit codes.
"""


class CimError(Exception):
    """Root of every error cim raises on purpose; the message is safe to show a user."""


class ConfigError(CimError):
    """The configuration or the environment is unusable (missing binaries, SRID mismatch)."""


class DatabaseUnavailable(CimError):
    """The database cannot be reached right now; retrying later may succeed."""


class NotFound(CimError):
    """A requested object (dataset, job, collection, feature) does not exist."""


class InvalidInput(CimError):
    """The caller's input is malformed or out of range."""


class UnsupportedCRS(InvalidInput):
    """A coordinate reference system is missing, unknown or cannot be used here."""


class ImportFailed(CimError):
    """A source file could not be imported; nothing of it was stored."""


class TilingError(CimError):
    """Building a tileset failed; the previous tileset is left in place."""


class PermissionDenied(CimError):
    """The caller is known but not allowed to do this."""


class AuthenticationRequired(CimError):
    """The caller must identify itself (an API key) to do this."""


class AnalysisTimeout(CimError):
    """An analysis ran past its request's deadline; a narrower request (or a retry) may pass."""


class AnalysisCancelled(AnalysisTimeout):
    """An analysis was stopped because its client went away."""
