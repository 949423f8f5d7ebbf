"""The community room: trending images from CivitAI and the LoRA combos behind them, no Qt.

A client for CivitAI's public REST API (with an on-disk cache that also serves offline), a
parser for the image `meta` every tool writes differently, and the combos: each image's LoRAs
resolved against the local catalog, filtered to what can run here, turned into a config.
"""
