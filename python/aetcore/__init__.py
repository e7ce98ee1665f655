"""aetcore."""
