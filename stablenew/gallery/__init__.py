"""The gallery's image index: metadata of ours and peers' images in SQLite, search, collections."""
