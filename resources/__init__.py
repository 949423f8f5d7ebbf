"""Shipped data (default presets, workflow templates, style sheet), installed as stablenew.resources."""
