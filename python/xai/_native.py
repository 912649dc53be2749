"""ctypes bindings to libxaic.so (the C interface in include/xai.h) and its status codes."""
from __future__ import annotations

import ctypes
import json
import os
import pathlib

API_VERSION = 3


class XAIError(Exception):
    """An error the engine reported; `code` is the C status code."""

    code = 7


class InvalidArgumentError(XAIError, ValueError):
    code = 1


class FileError(XAIError, FileNotFoundError):
    code = 2


class UnsupportedError(XAIError, NotImplementedError):
    code = 3


class DeviceError(XAIError, RuntimeError):
    code = 4


class OutOfMemoryError(XAIError, MemoryError):
    code = 5


class CancelledError(XAIError):
    code = 6


class InternalError(XAIError, RuntimeError):
    code = 7


_ERRORS = {e.code: e for e in (InvalidArgumentError, FileError, UnsupportedError, DeviceError, OutOfMemoryError, CancelledError, InternalError)}


def _library_path() -> str:
    """XAI_LIBRARY, else the library inside the installed package, else a checkout's release build."""
    explicit = os.environ.get("XAI_LIBRARY")
    if explicit:
        return explicit
    here = pathlib.Path(__file__).resolve().parent
    candidates = [here / "_lib" / "libxaic.so", here.parent.parent / ".build" / "release" / "libxaic.so"]
    for c in candidates:
        if c.exists():
            return str(c)
    raise ImportError("libxaic.so not found: install the wheel (pip install ./python), or set XAI_LIBRARY=/path/to/libxaic.so "
                      "(built by `swift build -c release --product xaic`)")


lib = ctypes.CDLL(_library_path())

c_char_pp = ctypes.POINTER(ctypes.c_char_p)
c_float_p = ctypes.POINTER(ctypes.c_float)
c_int64_p = ctypes.POINTER(ctypes.c_int64)
PROGRESS = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p)


class TensorView(ctypes.Structure):
    """xai_tensor_view: a borrowed float32 tensor."""
    _fields_ = [("data", c_float_p), ("shape", c_int64_p), ("rank", ctypes.c_size_t)]


class ExplainOptions(ctypes.Structure):
    """xai_explain_options."""
    _fields_ = [("targets", c_int64_p), ("n_targets", ctypes.c_size_t), ("knobs_json", ctypes.c_char_p),
                ("baseline", ctypes.POINTER(TensorView)), ("feature_mask", ctypes.POINTER(TensorView)),
                ("progress", PROGRESS), ("user", ctypes.c_void_p)]


class EvaluateOptions(ctypes.Structure):
    """xai_evaluate_options."""
    _fields_ = [("method", ctypes.c_char_p), ("maps", ctypes.POINTER(TensorView)), ("masks", ctypes.POINTER(TensorView)),
                ("metric_knobs_json", ctypes.c_char_p), ("explain", ExplainOptions)]


def _declare(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_declare("xai_api_version", ctypes.c_uint32)
_declare("xai_version_string", ctypes.c_char_p)
_declare("xai_last_error", ctypes.c_char_p)
_declare("xai_string_free", None, ctypes.c_void_p)
_declare("xai_devices_json", ctypes.c_int, ctypes.POINTER(ctypes.c_void_p))
_declare("xai_methods_json", ctypes.c_int, ctypes.POINTER(ctypes.c_void_p))
_declare("xai_model_open", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))
_declare("xai_model_open2", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))
_declare("xai_model_free", None, ctypes.c_void_p)
_declare("xai_model_info_json", ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p))
_declare("xai_predict", ctypes.c_int, ctypes.c_void_p, c_float_p, c_int64_p, ctypes.c_size_t, c_float_p, ctypes.c_size_t)
_declare("xai_explain", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, c_float_p, c_int64_p, ctypes.c_size_t, c_int64_p,
         ctypes.c_size_t, ctypes.c_char_p, PROGRESS, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p))
_declare("xai_explain2", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(TensorView), ctypes.POINTER(ExplainOptions),
         ctypes.POINTER(ctypes.c_void_p))
_declare("xai_evaluate", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(TensorView), ctypes.POINTER(EvaluateOptions),
         ctypes.POINTER(ctypes.c_void_p))
_declare("xai_metrics_json", ctypes.c_int, ctypes.POINTER(ctypes.c_void_p))
_declare("xai_preprocess", ctypes.c_int, ctypes.c_void_p, c_char_pp, ctypes.c_size_t, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))
_declare("xai_result_tensor", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(c_float_p), ctypes.POINTER(c_int64_p),
         ctypes.POINTER(ctypes.c_size_t))
_declare("xai_result_meta_json", ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p))
_declare("xai_result_free", None, ctypes.c_void_p)
_declare("xai_overlay", ctypes.c_int, ctypes.POINTER(ctypes.c_uint8), ctypes.c_int64, ctypes.c_int64, c_float_p, ctypes.c_int64,
         ctypes.c_int64, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint8))
_declare("xai_explain_files", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, PROGRESS, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p))
_declare("xai_evaluate_files", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, PROGRESS, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p))
_declare("xai_list_inputs", ctypes.c_int, c_char_pp, ctypes.c_size_t, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))
_declare("xai_write_report", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))

if lib.xai_api_version() < API_VERSION:
    raise ImportError(f"libxaic.so has interface version {lib.xai_api_version()}, this package needs {API_VERSION}")


def check(status: int) -> None:
    """Raises the exception of a non-zero status with the library's message."""
    if status != 0:
        message = (lib.xai_last_error() or b"").decode("utf-8", "replace")
        raise _ERRORS.get(status, InternalError)(message)


def take_json(call, *args):
    """Calls a function that returns a JSON string through its last argument; frees it; parses it."""
    out = ctypes.c_void_p()
    check(call(*args, ctypes.byref(out)))
    try:
        return json.loads(ctypes.string_at(out.value).decode("utf-8"))
    finally:
        lib.xai_string_free(out)
