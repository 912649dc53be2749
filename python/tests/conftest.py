import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Tests run against the checkout's sources and XAI_LIBRARY (default: the release build), or with
# XAI_TEST_INSTALLED=1 against the package installed where they run (the wheel check's venv).
if not os.environ.get("XAI_TEST_INSTALLED"):
    sys.path.insert(0, str(ROOT / "python"))
    os.environ.setdefault("XAI_LIBRARY", str(ROOT / ".build" / "release" / "libxaic.so"))
