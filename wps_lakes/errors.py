"""The library's one exception type for problems a user can fix.

Its message is written for the user (what is wrong and what to change); the service turns it
into an OWS ExceptionReport or a ProcessFailed status verbatim. Anything else raised from the
library is a bug and is reported as an internal error without details.
"""


class LakesError(Exception):
    """Bad or unusable input: the message says what to fix."""


class LimitExceeded(LakesError):
    """A request goes over a configured size or time limit; the message names the limit."""
