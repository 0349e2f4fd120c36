"""Compiled loops cached on disk, so that a module's first call in a new process loads its loops
instead of compiling them (seconds per loop and dtype otherwise).

numba's own cache (``cache=True``) keys a function on its bytecode and on its closure's contents
pickled, and a loop here closes over other compiled functions, which pickle with a per-process id:
the key never matched in the next process.  :class:`_StableCache` keys the closure on what those
functions are (their code, and what they close over, recursively), which is the same in every
process.  The cache sits where numba puts it for the module's file (``__pycache__`` beside it, or
``NUMBA_CACHE_DIR``); a module without a file (executed from a string), or one not in ``sys.modules``
under its name (run by ``importlib.util.spec_from_file_location`` and ``exec_module`` alone), compiles
in every process: a loop numba loads from its cache finds its module by importing that name.  The key
holds that name too: one file imported under two names keeps a cache entry for each.
"""
import hashlib
import sys
import types

try:
    from numba.core.caching import FunctionCache
except ImportError:
    FunctionCache = object


def _stable(value, seen=()) -> bytes:
    """Bytes that say what ``value`` is, the same in every process (marshal's vary with refcounts)."""
    function = getattr(value, "py_func", value)  # a compiled function: the Python function it compiles
    if id(value) in seen or not isinstance(function, types.FunctionType):
        return b"<cycle>" if id(value) in seen else repr(value).encode()
    code, cells = function.__code__, [c.cell_contents for c in function.__closure__ or ()]
    consts = [_stable(types.FunctionType(c, {})) if isinstance(c, types.CodeType) else repr(c).encode()
              for c in code.co_consts]
    return b"".join([code.co_code, repr(code.co_names).encode(), *consts,
                     *[_stable(c, seen + (id(value),)) for c in cells]])


class _StableCache(FunctionCache):
    def _index_key(self, sig, codegen):  # numba's key, the closure's part made stable, with the module's name
        function = self._py_func
        return sig, codegen.magic_tuple(), (hashlib.sha256(function.__module__.encode() + _stable(function)).hexdigest(), "")


def _on_disk(dispatcher):
    """``dispatcher`` (not yet compiled) with its compilations saved to and loaded from disk, where its
    function has a source file to key them on and its module is importable by name (else unchanged:
    compiled in every process)."""
    function = dispatcher.py_func
    if getattr(sys.modules.get(function.__module__), "__dict__", None) is not function.__globals__:
        return dispatcher  # (numba would save it under the module '<dynamic>', which no process can import)
    try:
        dispatcher._cache = _StableCache(dispatcher.py_func)
    except Exception:  # noqa: BLE001  (no file, an unwritable directory, another numba)
        pass
    return dispatcher
