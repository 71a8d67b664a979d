"""The exceptions artlib raises for problems a user can fix."""


class DataError(ValueError):
    """Input data (a CSV, an image, a directory) cannot be used; the message says where and what to do."""


class CheckpointError(ValueError):
    """A checkpoint or cache file does not match what it is being loaded for."""
