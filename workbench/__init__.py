"""The front door: the `workbench` CLI and the Textual app."""
