"""Small reusable widgets of the main window (no controllers of their own)."""
