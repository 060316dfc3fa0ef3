"""What the command-line tests share: ``run`` (``main`` in-process; the ``emb`` fixture is in conftest.py)."""
from __future__ import annotations

from hminsel.cli.main import main


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err
