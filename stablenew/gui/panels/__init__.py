"""Panels that plug into the main window (randomizer, library, learning, queue, nodes)."""
