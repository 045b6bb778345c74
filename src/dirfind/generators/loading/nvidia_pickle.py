"""Read NVIDIA network pickles (stylegan2-ada-pytorch, stylegan3) without NVIDIA's code and
without executing anything from the file.

NVIDIA's ``torch_utils.persistence`` pickles every network module as a call
``_reconstruct_persistent_obj(meta)`` where ``meta = {type: 'class', version, module_src,
class_name, state}``; the original code *executes* ``module_src`` (the full source of
``training/networks*.py``) to rebuild the class. We never do: a restricted unpickler resolves
only an allowlist of globals and maps the reconstruct call to :func:`_reconstruct`, which
returns a plain :class:`NetNode` tree built from ``class_name`` and ``state``. ``module_src``
is never read. Any other global (``posix.system``, ``builtins.exec``, a TensorFlow network,
...) stops loading with a one-line :class:`~dirfind.errors.BadInputError`.

Allowlist (everything else is refused):

* ``torch_utils.persistence._reconstruct_persistent_obj`` -> :func:`_reconstruct` (no code run)
* ``dnnlib.EasyDict`` / ``dnnlib.util.EasyDict`` -> plain ``dict``; ``collections.OrderedDict``
* ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_tensor`` / ``_rebuild_parameter``
  -> plain tensors (parameters are returned as ordinary tensors, ``requires_grad=False``)
* ``torch.storage._load_from_bytes`` -> the embedded blob, read with ``torch.load(...,
  weights_only=True)`` when a tensor on it is first used: tensors are :class:`LazyTensor` (shape
  known, data parsed on demand), so the networks of a snapshot that are not used (``G``, ``D``,
  ``augment_pipe`` next to ``G_ema``) cost no parsing. Blobs of :data:`SKIP_BYTES` or more are
  not even read while unpickling (:class:`_SkippingReader`): their file range is noted and read
  on first use, so a 1024 px snapshot (~380 MB) costs about the I/O of the generator it renders
* numpy ``dtype``, ``ndarray``, ``multiarray.scalar`` and ``multiarray._reconstruct`` (only for
  ``ndarray``), under both ``numpy.core`` and ``numpy._core`` spellings
* ``builtins.set`` / ``frozenset`` (older pickle protocols spell sets that way)

Return structure of :func:`read_nvidia_pickle` (what family adapters consume)
------------------------------------------------------------------------------
The unpickled top-level object, a plain ``dict`` such as
``{"G": NetNode, "D": NetNode, "G_ema": NetNode, "augment_pipe": NetNode | None,
"training_set_kwargs": dict, ...}`` (real snapshots also carry ``progress`` etc.; every
persistent module is a :class:`NetNode`, every EasyDict a ``dict``). A :class:`NetNode` has:

* ``class_name`` -- e.g. ``"Generator"``, ``"SynthesisLayer"`` (not the module path)
* ``init_args`` (tuple), ``init_kwargs`` (dict) -- the constructor arguments NVIDIA stored
  (``_init_args`` / ``_init_kwargs``; nested EasyDicts are dicts). Only top-level modules built
  through the persistence decorator record them faithfully; they are present on every node.
* ``params`` -- ordered ``{name: Tensor | LazyTensor}`` of the module's own parameters (None
  entries dropped; ``state_dict()`` reads lazy ones)
* ``buffers`` -- ordered ``{name: Tensor | LazyTensor}`` of its own buffers (``persistent_buffers()``
  omits those listed in ``_non_persistent_buffers_set``)
* ``children`` -- ordered ``{name: NetNode}`` (submodules; None entries dropped)
* ``attrs`` -- the remaining plain attributes of the module's ``__dict__`` (``num_ws``,
  ``w_dim``, ``in_channels``, numpy scalars/arrays in StyleGAN3, ...) minus torch's hook dicts
* methods: ``state_dict()`` -> ``{dotted_key: Tensor}`` in torch's order (own params, own
  persistent buffers, then children recursively) -- identical to the original module's
  ``state_dict()``; ``get(dotted_path)`` -> sub-node; ``named_nodes()`` -> iterate
  ``(dotted_path, node)``; ``kwargs()`` -> plain attributes overlaid with ``init_kwargs``.

:func:`generator_from_pickle` picks ``G_ema`` (falling back to ``G``) with a clear error for
discriminator-only or non-network pickles.
"""

from __future__ import annotations

import builtins
import collections
import io
import os
import pickle
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import BadInputError, UnsupportedError

# torch.nn.Module bookkeeping fields that are not part of the network (hooks, flags).
_MODULE_FIELDS = {
    "_parameters",
    "_buffers",
    "_modules",
    "_init_args",
    "_init_kwargs",
    "_non_persistent_buffers_set",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks",
    "_forward_hooks_always_called",
    "_forward_hooks_with_kwargs",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_is_full_backward_hook",
    "_load_state_dict_post_hooks",
    "_load_state_dict_pre_hooks",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
}


@dataclass
class NetNode:
    """One persistent NVIDIA module, rebuilt as data (no class, no code)."""

    class_name: str
    init_args: tuple = ()
    init_kwargs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, torch.Tensor] = field(default_factory=dict)
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)
    children: dict[str, NetNode] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    non_persistent: frozenset[str] = frozenset()

    def persistent_buffers(self) -> dict[str, torch.Tensor]:
        return {k: _read(self.buffers, k) for k in self.buffers if k not in self.non_persistent}

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """``{dotted_key: tensor}`` exactly as the original module's ``state_dict()`` (lazy
        tensors are read from their storages now)."""
        out: dict[str, torch.Tensor] = {}
        for name, node in self.named_nodes(prefix.rstrip(".")):
            p = f"{name}." if name else ""
            out.update({p + k: _read(node.params, k) for k in node.params})
            out.update({p + k: v for k, v in node.persistent_buffers().items()})
        return out

    def named_nodes(self, prefix: str = "") -> Iterator[tuple[str, NetNode]]:
        """Pre-order ``(dotted_path, node)`` over this node and its descendants."""
        yield prefix, self
        for name, child in self.children.items():
            yield from child.named_nodes(f"{prefix}.{name}" if prefix else name)

    def get(self, path: str) -> NetNode | None:
        """The descendant at dotted ``path`` ("" = self), or None."""
        node: NetNode | None = self
        for part in [p for p in path.split(".") if p]:
            node = node.children.get(part) if node is not None else None
        return node

    def kwargs(self) -> dict[str, Any]:
        """Constructor kwargs plus the plain attributes (attributes lose to recorded kwargs)."""
        plain = {k: v for k, v in self.attrs.items() if not k.startswith("_")}
        return {**plain, **self.init_kwargs}

    def __repr__(self) -> str:
        return (
            f"NetNode({self.class_name}, {len(self.params)} params, {len(self.buffers)} buffers, "
            f"children={list(self.children)})"
        )


#: storage blobs at least this large are skipped while unpickling and read from the file on first use
SKIP_BYTES = 1 << 20


@dataclass(frozen=True)
class _FileRange:
    """Where a skipped blob lies: ``head`` (the bytes the unpickler had already buffered), then
    ``size`` bytes at ``offset`` of ``path``, which must still have the ``stamp`` it had when loaded."""

    path: Path
    offset: int
    size: int
    head: bytes
    stamp: tuple[int, int]

    def read(self) -> bytes:
        with open(self.path, "rb") as f:
            st = os.fstat(f.fileno())
            if (st.st_size, st.st_mtime_ns) != self.stamp:
                raise BadInputError(f"{self.path.name} changed on disk after it was loaded; load it again")
            f.seek(self.offset)
            data = f.read(self.size)
        if len(data) != self.size:
            raise BadInputError(f"cannot read {self.path.name}: truncated")
        return self.head + data if self.head else data


class _Blob:
    """One storage's ``torch.save`` bytes (or their :class:`_FileRange`), parsed on first use and
    then kept (views share it)."""

    __slots__ = ("data", "parsed", "source")

    def __init__(self, data: bytes, source: _FileRange | None = None):
        self.data, self.parsed, self.source = data, None, source

    def storage(self) -> Any:
        if self.parsed is None:
            data = self.data if self.source is None else self.source.read()
            self.parsed, self.data, self.source = _parse_storage(data), b"", None
        return self.parsed


@dataclass(frozen=True)
class LazyTensor:
    """A tensor of an NVIDIA pickle whose storage is not parsed yet: ``shape`` is known (configs
    are read off shapes), :meth:`read` builds the tensor."""

    blob: _Blob
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def shape(self) -> torch.Size:
        return torch.Size(self.size)

    def read(self) -> torch.Tensor:
        return _storage_tensor(self.blob.storage(), self.offset, self.size, self.stride)


def _read(tensors: dict[str, Any], key: str) -> torch.Tensor:
    """``tensors[key]`` as a tensor, reading (and keeping) a lazy one."""
    v = tensors[key]
    if isinstance(v, LazyTensor):
        v = tensors[key] = v.read()
    return v


def _reconstruct(meta: Any) -> NetNode:
    """Stand-in for ``persistence._reconstruct_persistent_obj``: data only, ``module_src`` unused."""
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise BadInputError("malformed persistent object in NVIDIA pickle")
    state = meta.get("state")
    if not isinstance(state, dict):
        raise BadInputError(f"persistent object {meta['class_name']} has no module state")

    def tensors(name: str) -> dict[str, torch.Tensor]:
        d = state.get(name) or {}
        if not isinstance(d, dict):
            raise BadInputError(f"persistent object {meta['class_name']}: {name} is not a dict")
        out = {}
        for k, v in d.items():
            if v is None:
                continue
            if not isinstance(v, (torch.Tensor, LazyTensor)):
                raise BadInputError(f"persistent object {meta['class_name']}: {name}[{k!r}] is not a tensor")
            out[str(k)] = v
        return out

    children = {}
    for k, v in (state.get("_modules") or {}).items():
        if v is None:
            continue
        if not isinstance(v, NetNode):
            raise BadInputError(f"persistent object {meta['class_name']}: submodule {k!r} is not a persistent module")
        children[str(k)] = v
    kwargs = state.get("_init_kwargs") or {}
    args = state.get("_init_args") or ()
    return NetNode(
        class_name=meta["class_name"],
        init_args=tuple(args) if isinstance(args, (list, tuple)) else (),
        init_kwargs=dict(kwargs) if isinstance(kwargs, dict) else {},
        params=tensors("_parameters"),
        buffers=tensors("_buffers"),
        children=children,
        attrs={k: v for k, v in state.items() if k not in _MODULE_FIELDS},
        non_persistent=frozenset(str(x) for x in (state.get("_non_persistent_buffers_set") or ())),
    )


def _load_storage(blob: Any) -> _Blob:
    """``torch.storage._load_from_bytes``, deferred: the blob is parsed when a tensor needs it."""
    if not isinstance(blob, (bytes, bytearray)):
        raise BadInputError("storage entry in NVIDIA pickle is not a byte string")
    return _Blob(bytes(blob))


class _Resync(Exception):
    """A skipped byte string was not a storage blob: read the file again without skipping."""


class _SkippingReader(io.RawIOBase):
    """The file as the unpickler reads it, except for large counted byte strings. CPython's
    unpickler allocates each one and fills it through ``readinto``; for :data:`SKIP_BYTES` or more
    this seeks past the data instead and queues its range, so the string's pages are never
    touched. The next ``_load_from_bytes`` call claims it (in a pickle the blob is that call's
    argument, just before it); a skipped string that went anywhere else makes the load start over
    without skipping (:class:`_Resync`)."""

    def __init__(self, f: io.BufferedReader, path: Path):
        self.f, self.path = f, path.absolute()  # blobs are read later, perhaps from another working directory
        st = os.fstat(f.fileno())
        self.stamp = (st.st_size, st.st_mtime_ns)  # (size, mtime) when loaded
        self.pending: list[tuple[int, int]] = []
        self.claimed: dict[int, tuple[Any, _Blob]] = {}  # id(string) -> (string, blob), for memo reuse

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self.f.read(n)

    def readline(self, limit: int = -1) -> bytes:
        return self.f.readline(limit)

    def readinto(self, buf: Any) -> int:
        n, pos = len(buf), self.f.tell()
        if n < SKIP_BYTES or pos + n > self.stamp[0]:  # small, or truncated: read (the unpickler reports it)
            return self.f.readinto(buf)
        self.f.seek(n, os.SEEK_CUR)
        self.pending.append((pos, n))
        return n

    def load_storage(self, blob: Any) -> _Blob:
        if isinstance(blob, (bytes, bytearray)) and id(blob) in self.claimed:
            return self.claimed[id(blob)][1]
        if not self.pending:
            return _load_storage(blob)
        pos, n = self.pending.pop()
        if self.pending or not isinstance(blob, (bytes, bytearray)) or n > len(blob):
            raise _Resync
        head = bytes(blob[: len(blob) - n])
        out = _Blob(b"", _FileRange(self.path, pos, n, head, self.stamp))
        self.claimed[id(blob)] = (blob, out)
        return out


def _parse_storage(blob: bytes) -> Any:
    """The storage a blob holds: ``torch.load(weights_only=True)`` (the blob is a torch.save)."""
    try:
        return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as e:  # a storage blob outside torch's own safe subset
        raise BadInputError(f"unsafe or corrupt tensor storage ({_first_line(e)})") from None


def _storage_tensor(storage: Any, offset: int, size: Any, stride: Any) -> torch.Tensor:
    if isinstance(storage, torch.TypedStorage):
        dtype, untyped = storage.dtype, storage._untyped_storage
    elif isinstance(storage, torch.UntypedStorage):
        dtype, untyped = torch.uint8, storage
    else:
        raise BadInputError("tensor in NVIDIA pickle does not reference a storage")
    try:
        t = torch.empty((0,), dtype=dtype).set_(untyped, int(offset), tuple(size), tuple(stride))
    except (RuntimeError, TypeError, ValueError) as e:
        raise BadInputError(f"inconsistent tensor in NVIDIA pickle ({_first_line(e)})") from None
    from .checkpoint import check_tensor  # (checkpoint imports this module at its end)

    check_tensor(t, "NVIDIA pickle")
    return t


def _tensor(storage: Any, offset: Any, size: Any, stride: Any) -> torch.Tensor | LazyTensor:
    if not isinstance(storage, _Blob):
        return _storage_tensor(storage, offset, size, stride)
    try:
        dims = tuple(int(x) for x in size), tuple(int(x) for x in stride)
        ok = len(dims[0]) == len(dims[1]) <= 8 and min((*dims[0], *dims[1], 0)) >= 0
        if not ok or isinstance(offset, bool):
            raise ValueError(f"size {size!r}, stride {stride!r}")
        return LazyTensor(storage, int(offset), *dims)
    except (TypeError, ValueError) as e:
        raise BadInputError(f"inconsistent tensor in NVIDIA pickle ({_first_line(e)})") from None


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):  # noqa: ANN001
    return _tensor(storage, offset, size, stride)


def _rebuild_tensor(storage, offset, size, stride):  # noqa: ANN001
    return _tensor(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, hooks=None, *rest):  # noqa: ANN001
    if not isinstance(data, (torch.Tensor, LazyTensor)):
        raise BadInputError("parameter in NVIDIA pickle is not a tensor")
    return data


def _np_reconstruct(subtype, shape, dtype_code):  # noqa: ANN001
    if subtype is not np.ndarray:
        raise BadInputError("numpy array subclass in NVIDIA pickle is not allowed")
    if not isinstance(shape, tuple) or len(shape) > 8 or np.prod(shape, dtype=np.float64) > 1 << 16:
        raise BadInputError(f"numpy array placeholder of shape {shape!r} in NVIDIA pickle")  # numpy pickles (0,)
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


def _np_scalar(dtype, data=None):  # noqa: ANN001
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise BadInputError("numpy object scalar in NVIDIA pickle is not allowed")
    return _NP_CORE.multiarray.scalar(dtype, data)


_NP_CORE = getattr(np, "_core", None) or np.core

_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct,
    ("dnnlib", "EasyDict"): dict,
    ("dnnlib.util", "EasyDict"): dict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("builtins", "set"): builtins.set,
    ("builtins", "frozenset"): builtins.frozenset,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "scalar")] = _np_scalar
    _ALLOWED[(_mod, "_reconstruct")] = _np_reconstruct


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, reader: _SkippingReader | None = None):
        super().__init__(file)
        self.reader = reader

    def find_class(self, module: str, name: str) -> Any:
        if self.reader is not None and (module, name) == ("torch.storage", "_load_from_bytes"):
            return self.reader.load_storage
        fn = _ALLOWED.get((module, name))
        if fn is not None:
            return fn
        if module.startswith("dnnlib.tflib"):
            raise UnsupportedError(
                "this is a TensorFlow StyleGAN pickle; convert it first with stylegan2-ada-pytorch's legacy.py"
            )
        raise BadInputError(
            f"refusing global {module}.{name}: it is outside the allowlist for NVIDIA network pickles "
            "(loading it could execute code)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise BadInputError("persistent ids are not allowed in NVIDIA network pickles")


def _first_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return (text[:157] + "...") if len(text) > 160 else (text or type(e).__name__)


def load_restricted(path: str | Path) -> Any:
    """Unpickle ``path`` with the allowlist above; raises one-line errors."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            reader = _SkippingReader(f, path)
            try:
                obj = _RestrictedUnpickler(reader, reader).load()
                if not reader.pending:
                    return obj
            except _Resync:
                pass
            except Exception:
                if not reader.pending:  # nothing unread was used: the plain load would fail alike
                    raise
            f.seek(0)
            return _RestrictedUnpickler(f).load()
    except UnsupportedError:
        raise
    except BadInputError as e:
        raise BadInputError(f"refusing to load {path.name}: {e}") from None
    except (EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        raise BadInputError(f"cannot read {path.name}: truncated or corrupt pickle ({_first_line(e)})") from None
    except RecursionError:
        raise BadInputError(f"cannot read {path.name}: pickle nested too deeply") from None
    except Exception as e:  # malformed opcodes/arguments: never a traceback for bad input
        raise BadInputError(f"cannot read {path.name}: corrupt pickle ({type(e).__name__}: {_first_line(e)})") from None


def is_network_pickle(obj: Any) -> bool:
    """True for a dict holding at least one persistent network (a training snapshot)."""
    return isinstance(obj, dict) and any(isinstance(v, NetNode) for v in obj.values())


def read_nvidia_pickle(path: str | Path) -> dict[str, Any]:
    """Pickle reader for :func:`~dirfind.generators.checkpoint.register_pickle_reader`.

    Raises :class:`UnsupportedError` ("not mine") for a safe pickle without persistent networks,
    :class:`BadInputError` for unsafe, truncated or corrupt files.
    """
    obj = load_restricted(path)
    if isinstance(obj, NetNode):  # a bare pickled module (e.g. pickle.dump(G_ema))
        obj = {"G_ema": obj} if obj.class_name == "Generator" else {obj.class_name: obj}
    if not is_network_pickle(obj):
        raise UnsupportedError(f"{Path(path).name} is a pickle but not an NVIDIA network snapshot")
    return obj


def generator_from_pickle(obj: Any, name: str = "checkpoint") -> NetNode:
    """The generator to render with: ``G_ema`` (the averaged weights), else ``G``."""
    if not is_network_pickle(obj):
        raise BadInputError(f"{name} is not an NVIDIA network pickle")
    for key in ("G_ema", "G"):
        node = obj.get(key)
        if isinstance(node, NetNode):
            return node
    have = ", ".join(f"{k} ({v.class_name})" for k, v in obj.items() if isinstance(v, NetNode))
    raise BadInputError(f"{name} has no generator (G_ema or G); it holds {have} (a discriminator-only file?)")
