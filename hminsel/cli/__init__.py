"""The ``hminsel`` command line (``hminsel.cli.main:main``)."""
