"""The one exception type for mistakes a user can fix: printed as a single line, no traceback."""


class UserError(Exception):
    """A bad config key, a missing data directory, a corrupt file: says what and how to fix it."""
