"""Helpers shared by the tests; REPO: the repository root, where the entry scripts are."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
