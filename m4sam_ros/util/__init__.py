"""Basics with no project imports: atomic files and folders (``atomic``: nothing half-written).

Everything may import it; it imports nothing of the project.
"""
