"""The app as the layout snapshots see it: the shipped toy:ioi on CPU, no user keymap."""

import os

os.environ["XDG_CONFIG_HOME"] = os.path.join(os.path.dirname(__file__), "no-such-config")

from workbench.app import WorkbenchApp  # noqa: E402

app = WorkbenchApp("toy:ioi", device="cpu")
