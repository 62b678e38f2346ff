"""Basics with no project imports: atomic files and folders (``atomic``: nothing half-written);
what every command line shares (``cli``: help that shows defaults, ``--device auto``).

Everything may import it; it imports nothing of the project.
"""
