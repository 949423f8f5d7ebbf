"""StableNew: a desktop control room for Stable Diffusion servers."""

__version__ = "0.1.0"
