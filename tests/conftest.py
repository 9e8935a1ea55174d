"""Shared by every test folder: puts ``tests/helpers`` (example models, the v1 report converter, the
page's minimal DOM for node) on ``sys.path``, so a test imports them by plain name wherever it lives.

Tests are grouped by the unit they check (formulas/, api/, report/, cli/, models/, distributed/,
docs/, package/); module basenames stay unique across folders (pytest's default import mode)."""
import os
import sys

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")
if HELPERS not in sys.path:
    sys.path.insert(0, HELPERS)
