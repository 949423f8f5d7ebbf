"""Stage cards: one per pipeline stage, their fields built from the config model's descriptions."""
