"""The learning room: a record per output image (SQLite, WAL), ratings and tags, guided
learning runs that vary one setting over shared seeds, insights in plain words, recommended
presets and an export for analysis elsewhere. Pure Python: no Qt here."""
