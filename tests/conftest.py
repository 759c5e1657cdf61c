"""Shared test set-up: makes argoeks.mlops importable as a collection from this checkout."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ./argoeks setup links this checkout as .venv/collections/ansible_collections/argoeks/mlops.
COLLECTIONS = ROOT / ".venv" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
