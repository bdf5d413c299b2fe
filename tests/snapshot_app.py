"""The app as the layout snapshots see it: the shipped toy:ioi on CPU, no user keymap, a cursor
that does not blink (the focused prompt box would otherwise be drawn either way), and a fixed
memory figure in the status bar."""

import os

os.environ["XDG_CONFIG_HOME"] = os.path.join(os.path.dirname(__file__), "no-such-config")

from textual.widgets import Input  # noqa: E402

import workbench.app  # noqa: E402
from workbench.app import WorkbenchApp  # noqa: E402

Input._toggle_cursor = lambda self: None  # the cursor stays drawn
workbench.app.memory_text = lambda device: "RSS n MiB"  # memory in use differs run to run
app = WorkbenchApp("toy:ioi", device="cpu")
