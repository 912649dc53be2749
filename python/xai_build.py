"""A PEP 517 build backend for the xai wheel, with no build dependencies.

build_wheel runs `swift build -c release --product xaic -Xswiftc -static-stdlib` in the repository
(its own scratch folder, .build-wheel: the static runtime changes every compile job), strips the
library, and zips it with the Python sources into a `py3-none-<platform>` wheel: ctypes does not
touch CPython's ABI, so one wheel serves every Python 3. XAI_LIBRARY=/path/libxaic.so packs that
file instead of building. The library still loads the system libraries the engine uses (OpenBLAS,
oneDNN, the OpenCL ICD loader, CLBlast, libpng, TurboJPEG): on Debian, the packages `make deps` installs.
"""
from __future__ import annotations

import base64
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sysconfig
import tempfile
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def _version() -> str:
    text = (ROOT / "Sources" / "XAI" / "XAI.swift").read_text()
    match = re.search(r'public static let string = "([^"]+)"', text)
    if not match:
        raise RuntimeError("cannot find XAIVersion.string in Sources/XAI/XAI.swift")
    return match.group(1)


def _library() -> pathlib.Path:
    given = os.environ.get("XAI_LIBRARY")
    if given:
        return pathlib.Path(given)
    if not (ROOT / "Package.swift").exists():
        raise RuntimeError(f"{ROOT} is not the xai repository (no Package.swift): build from a checkout, or set XAI_LIBRARY")
    scratch = ROOT / ".build-wheel"
    subprocess.run(["swift", "build", "-c", "release", "--product", "xaic", "--scratch-path", str(scratch), "-Xswiftc", "-static-stdlib"],
                   cwd=ROOT, check=True)
    return scratch / "release" / "libxaic.so"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


# The distribution's name on PyPI: `xai` there is another project (EthicalML's toolbox). The import
# name stays `xai`.
DISTRIBUTION = "xai-attribution-engine"
# The `ray` extra (as pyproject.toml's optional-dependencies spell it): Ray Data for xai.ray's Parquet output.
RAY_REQUIREMENT = "ray[data]>=2.9"


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    version = _version()
    platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    tag = f"py3-none-{platform}"
    stem = DISTRIBUTION.replace("-", "_")  # a wheel's file name spells the distribution with underscores
    name = f"{stem}-{version}-{tag}.whl"
    dist_info = f"{stem}-{version}.dist-info"
    files: dict[str, bytes] = {}
    for source in sorted((HERE / "xai").glob("*.py")):
        files[f"xai/{source.name}"] = source.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        library = pathlib.Path(tmp) / "libxaic.so"
        shutil.copyfile(_library(), library)
        if shutil.which("strip"):
            subprocess.run(["strip", "--strip-unneeded", str(library)], check=True)
        files["xai/_lib/libxaic.so"] = library.read_bytes()
    files["xai/_lib/xai.h"] = (ROOT / "include" / "xai.h").read_bytes()
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: {version}\nSummary: Explanations of image classifiers on the xai engine\n"
        "Requires-Python: >=3.9\nRequires-Dist: numpy\n"
        # pyproject.toml's optional-dependencies: `pip install "xai-attribution-engine[ray]"` for xai.ray.
        f"Provides-Extra: ray\nRequires-Dist: {RAY_REQUIREMENT}; extra == \"ray\"\n").encode()
    files[f"{dist_info}/WHEEL"] = f"Wheel-Version: 1.0\nGenerator: xai_build\nRoot-Is-Purelib: false\nTag: {tag}\n".encode()
    record = [_record_line(n, d) for n, d in files.items()] + [f"{dist_info}/RECORD,,"]
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = pathlib.Path(wheel_directory) / name
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as wheel:
        for n, d in files.items():
            info = zipfile.ZipInfo(n, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if n.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, d)
    return name


def build_sdist(sdist_directory, config_settings=None):
    raise RuntimeError("xai has no source distribution: install from a checkout (pip install ./python), which builds the Swift library")
