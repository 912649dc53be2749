import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Tests run against the checkout's sources and XAI_LIBRARY (default: the release build).
sys.path.insert(0, str(ROOT / "python"))
os.environ.setdefault("XAI_LIBRARY", str(ROOT / ".build" / "release" / "libxaic.so"))
