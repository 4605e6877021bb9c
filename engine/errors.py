"""The one exception type a user ever sees from the engine."""


class PansharpenError(Exception):
    """A problem with the user's input or request.

    The message names what is wrong and what to do about it; front-ends show it as
    it is (the CLI prints it, the Processing algorithm raises it as a
    ``QgsProcessingException``).
    """


class Cancelled(Exception):
    """The user cancelled the run; nothing was written under the requested name."""
