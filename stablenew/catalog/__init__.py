"""The catalog: every LoRA and checkpoint the user has, read from files and servers, no Qt.

Safetensors headers and sidecar files are read (never the tensors, never rewritten), merged
into one `ModelEntry` per file, cached in SQLite by path + size + mtime, hashed in the
background, and matched against prompts. Not to be confused with the presets library.
"""
