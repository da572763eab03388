"""How a job says it failed, mapped onto the UWS ``errorSummary``.

``JobUsageError`` (the parameters make no sense) and ``JobFatalError`` end in
ERROR with ``type="fatal"``; ``JobTransientError`` (an archive was down, try
again later) with ``type="transient"``.  Any other exception is fatal and its
traceback becomes the error detail.
"""

from __future__ import annotations


class JobError(Exception):
    """A failure a job reports on purpose, with a message for the astronomer."""

    error_type = "fatal"

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class JobUsageError(JobError):
    """The job's parameters are invalid or inconsistent."""


class JobFatalError(JobError):
    """The job cannot succeed as asked."""


class JobTransientError(JobError):
    """The job failed for a reason that may go away; running it again may work."""

    error_type = "transient"
