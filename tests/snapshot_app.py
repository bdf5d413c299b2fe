"""The app as the layout snapshots see it: the shipped toy:ioi on CPU, no user keymap, and a
cursor that does not blink (the focused prompt box would otherwise be drawn either way)."""

import os

os.environ["XDG_CONFIG_HOME"] = os.path.join(os.path.dirname(__file__), "no-such-config")

from textual.widgets import Input  # noqa: E402

from workbench.app import WorkbenchApp  # noqa: E402

Input._toggle_cursor = lambda self: None  # the cursor stays drawn
app = WorkbenchApp("toy:ioi", device="cpu")
