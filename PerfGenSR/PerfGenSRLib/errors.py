"""The project's one exception type for problems a user can cause and fix.

Messages name the engine's parameters in backticks (`` `measured_lines` must be ... ``), never a
front end's spelling: the command line shows them as its flags (``--measured-lines``), the Slicer
panel as words.
"""


class PerfGenError(Exception):
    """A user-facing error: its message says what is wrong and what to do, in one line."""


class Cancelled(PerfGenError):
    """The user cancelled a long run; nothing was written."""


class UntrustedModel(PerfGenError):
    """A model file in a format that can run code (a pickled checkpoint), not loaded without trust."""
