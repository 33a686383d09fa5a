"""The exceptions rcforest raises for problems a user can fix.

Each is a subclass of the built-in exception a caller would catch without
knowing rcforest (``ValueError``, ``FileNotFoundError``), so plain
``except ValueError`` keeps working.
"""

__all__ = [
    "DataUnavailableError",
    "InvocationError",
    "NotAcceptable",
    "PayloadTooLarge",
    "UnsupportedContentType",
    "UsageError",
]


class UsageError(Exception):
    """A problem with the command line's input, reported without a traceback (exit code 2)."""


class DataUnavailableError(FileNotFoundError):
    """The data set is neither on disk nor downloadable; the message says where to put it."""


class InvocationError(ValueError):
    """The endpoint rejected a request (a 4xx or 5xx answer).

    Attributes
    ----------
    status : int
        HTTP status code.
    code : str
        Error code, such as ``"ValidationError"``.
    """

    def __init__(self, status, code, message):
        super().__init__(f"{code} ({status}): {message}")
        self.status = status
        self.code = code


class UnsupportedContentType(ValueError):
    """The request's Content-Type is not one the model reads (HTTP 415)."""


class NotAcceptable(ValueError):
    """None of the types in the request's Accept header can be written (HTTP 406)."""


class PayloadTooLarge(ValueError):
    """A request or data file holds more values than the reader accepts (HTTP 413)."""
