"""The one error type that means "the user asked for something that cannot be done"."""


class BadInput(ValueError):
    """Bad input from the user (wrong token, empty prompt, unknown model...).

    The CLI turns it into exit code 2 with its message; the TUI into an error dialog.
    Anything else escaping an analysis is an internal failure.
    """


class WouldOverwrite(BadInput):
    """The run would write over files already there (a training run's output folder). The CLI
    refuses it (exit 2) unless told ``--force``; the TUI asks before going on."""

    def __init__(self, message: str, path: str, holds: str) -> None:
        super().__init__(message)
        self.path, self.holds = path, holds  # the folder, and what is in it ("config.json, model.safetensors")


class Cancelled(Exception):
    """A long analysis stopped between batches because the user asked (Escape in the TUI)."""
