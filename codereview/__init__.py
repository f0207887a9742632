"""The ``codereview`` command line and the settings every part is built from."""
