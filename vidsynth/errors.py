"""Typed errors. The CLI prints any VidsynthError as one line and exits non-zero."""


class VidsynthError(Exception):
    """Base class: a problem with the user's input or environment, explained in the message."""


class ConfigError(VidsynthError):
    """A model configuration that cannot be built (unknown cell, bad size, ...)."""


class WeightsError(VidsynthError):
    """A weights file or directory that cannot be read or does not fit the model."""


class ExportError(VidsynthError):
    """An export that cannot be carried out (bad options, unwritable output, ...)."""


class ValidationError(VidsynthError):
    """Outputs of two backends differ by more than the tolerance."""


class RuntimeBackendError(VidsynthError):
    """A backend or device that is not available, or artifacts that do not fit together."""


class DataError(VidsynthError):
    """Training data that cannot be read."""


class InputError(VidsynthError):
    """A bad argument value (frame count, batch size, output path, ...). `fields` names the
    request fields at fault, for callers that report per field (the HTTP server)."""

    def __init__(self, message: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fields = tuple(fields)

    def __reduce__(self):  # keep `fields` when pickled across processes (Ray replicas)
        return (type(self), (str(self), self.fields))


class StorageError(VidsynthError):
    """Writing failed (disk full, a path that cannot be replaced); what was there is unchanged."""


class MissingDependencyError(VidsynthError):
    """An optional package that this feature needs is not installed."""


def choice_error(cls: type, what: str, got: object, valid: "list[str] | tuple[str, ...]") -> VidsynthError:
    """An error for a value outside a fixed set, listing the valid ones."""
    return cls(f"unknown {what} {got!r}; expected one of: {', '.join(valid)}")
