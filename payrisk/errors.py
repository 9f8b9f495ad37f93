"""User-facing errors of the command line."""


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""
