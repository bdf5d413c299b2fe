"""Everything numeric: hooked models, analyses, tasks and toy models. No UI, no persistence."""
