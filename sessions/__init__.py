"""Sessions: model loading, running analyses from the analyst's text input, and (later) the store."""
