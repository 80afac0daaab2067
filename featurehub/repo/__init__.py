"""A feature repo on disk: its Python files, and their validation against the sources."""
