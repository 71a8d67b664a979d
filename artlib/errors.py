"""The exceptions artlib raises for problems a user can fix."""


class DataError(ValueError):
    """Input data (a CSV, an image, a directory) cannot be used; the message says where and what to do."""


class CheckpointError(ValueError):
    """A checkpoint or cache file does not match what it is being loaded for."""


def no_such(option: str, name: object, kind: str, choices: list[str]) -> str:
    """The one message for a name no registry holds: the option, the close names and every choice."""
    import difflib

    close = difflib.get_close_matches(str(name), choices, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return f"{option} {name!r}: no such {kind}; {hint}{kind}s are: {', '.join(choices)}."
