"""Torch-free reader and writer for PyTorch's zip checkpoint container (``torch.save`` format).

The container is a zip archive (entries stored, not compressed) whose entries sit under one
folder: ``<name>/data.pkl`` (a protocol-2 pickle), ``<name>/data/<key>`` (raw little-endian
storages), ``<name>/byteorder`` and ``<name>/version``.  Inside the pickle every tensor is

    REDUCE(GLOBAL torch._utils _rebuild_tensor_v2,
           (BINPERSID ('storage', GLOBAL torch FloatStorage, '<key>', 'cpu', numel),
            offset, size, stride, requires_grad=False, OrderedDict()))

Only what the UniTok checkpoints use is supported: float32 tensors (plus int64/float64 for
reading), contiguous C-order layout, CPU storages.
"""
import collections
import io
import pickle
import struct
import sys
import types
import zipfile

import numpy as np

# ---------------------------------------------------------------- writing

_ALIGN = 64  # torch aligns every record's payload to 64 bytes


class _Global:
    """Object pickled as a GLOBAL opcode ``module qualname`` (and never instantiated)."""


def _make_global(module, qualname):
    cls = type(qualname.split(".")[-1], (_Global,), {})
    cls.__module__ = module
    cls.__qualname__ = qualname
    return cls


_REBUILD_TENSOR_V2 = _make_global("torch._utils", "_rebuild_tensor_v2")
_FLOAT_STORAGE = _make_global("torch", "FloatStorage")
_TORCH_DTYPES = {}


def torch_dtype(name):
    """A stand-in for e.g. ``torch.float32`` that pickles as GLOBAL 'torch float32'."""
    if name not in _TORCH_DTYPES:
        _TORCH_DTYPES[name] = _make_global("torch", name)
    return _TORCH_DTYPES[name]


class _Storage:
    def __init__(self, key, array):
        self.key = key
        self.array = array


class _Tensor:
    """A float32 tensor that pickles exactly like a torch CPU tensor."""

    def __init__(self, storage, shape):
        self.storage = storage
        self.shape = tuple(int(s) for s in shape)

    def __reduce__(self):
        stride = []
        acc = 1
        for s in reversed(self.shape):
            stride.append(acc)
            acc *= s
        stride = tuple(reversed(stride))
        return (_REBUILD_TENSOR_V2,
                (self.storage, 0, self.shape, stride, False, collections.OrderedDict()))


class _fake_torch_modules:
    """The pickler checks that a GLOBAL resolves to the very object being pickled, so the
    stand-ins are exposed as ``torch`` / ``torch._utils`` while dumping (restored afterwards)."""

    def __enter__(self):
        self.saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
        torch = types.ModuleType("torch")
        utils = types.ModuleType("torch._utils")
        torch._utils = utils
        torch.FloatStorage = _FLOAT_STORAGE
        for name, cls in _TORCH_DTYPES.items():
            setattr(torch, name, cls)
        utils._rebuild_tensor_v2 = _REBUILD_TENSOR_V2
        sys.modules["torch"] = torch
        sys.modules["torch._utils"] = utils

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", _FLOAT_STORAGE, obj.key, "cpu", int(obj.array.size))
        return None


def save_checkpoint(path, obj_builder, folder):
    """Write a torch-style zip checkpoint.

    ``obj_builder(tensor)`` must return the object to pickle, calling ``tensor(ndarray)`` for
    every array that should become a torch tensor (float32).  Storage keys are assigned in call
    order ("0", "1", ...), as torch does for first appearance in the pickle.
    """
    storages = []

    def tensor(array):
        a = np.array(array, dtype="<f4", order="C")  # (ascontiguousarray would make 0-d 1-d)
        st = _Storage(str(len(storages)), a)
        storages.append(st)
        return _Tensor(st, a.shape)

    obj = obj_builder(tensor)
    buf = io.BytesIO()
    with _fake_torch_modules():
        _Pickler(buf, protocol=2).dump(obj)
    records = [("data.pkl", buf.getvalue()), ("byteorder", b"little")]
    # torch writes storages sorted by key as strings
    for st in sorted(storages, key=lambda s: s.key):
        records.append(("data/" + st.key, st.array.tobytes()))
    records.append(("version", b"3\n"))

    with open(path, "wb") as fh:
        zf = zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        for name, payload in records:
            full = folder + "/" + name
            info = zipfile.ZipInfo(full, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 0
            header = 30 + len(full.encode())
            offset = fh.tell()
            pad = (-(offset + header + 4)) % _ALIGN
            # 'FB' extra field of torch's writer: padding so that the payload starts 64-aligned
            info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
            zf.writestr(info, payload)
        zf.close()


# ---------------------------------------------------------------- reading

class _StubDtype:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "torch." + self.name

    def __eq__(self, other):
        return isinstance(other, _StubDtype) and other.name == self.name

    def __hash__(self):
        return hash(self.name)


_STORAGE_DTYPES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "LongStorage": "<i8",
                   "IntStorage": "<i4", "HalfStorage": "<f2", "ByteStorage": "u1",
                   "BoolStorage": "?"}


class _StorageType:
    def __init__(self, name):
        self.name = name


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None,
                       metadata=None):
    flat = storage
    size = tuple(size)
    if len(size) == 0:
        return flat[offset:offset + 1].reshape(())
    item = flat.itemsize
    return np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                           strides=tuple(s * item for s in stride)).copy()


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh, zf, prefix):
        super().__init__(fh)
        self.zf = zf
        self.prefix = prefix
        self.cache = {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch":
            return _StubDtype(name)
        raise pickle.UnpicklingError(f"unsupported global {module}.{name}")

    def persistent_load(self, pid):
        kind, stype, key, _location, numel = pid
        assert kind == "storage"
        if key not in self.cache:
            raw = self.zf.read(self.prefix + "data/" + key)
            arr = np.frombuffer(raw, dtype=_STORAGE_DTYPES[stype.name])
            assert arr.size == numel, (key, arr.size, numel)
            self.cache[key] = arr
        return self.cache[key]


def load_checkpoint(path):
    """Read a torch zip checkpoint into plain Python objects with NumPy arrays as tensors."""
    zf = zipfile.ZipFile(path)
    pkl = [n for n in zf.namelist() if n.endswith("/data.pkl")]
    assert len(pkl) == 1, pkl
    prefix = pkl[0][: -len("data.pkl")]
    with zf.open(pkl[0]) as fh:
        return _Unpickler(io.BytesIO(fh.read()), zf, prefix).load()
