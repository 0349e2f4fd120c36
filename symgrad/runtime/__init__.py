"""The code emitted modules run: ordinary, importable modules, tested as they are, and inlined
verbatim into each emitted file (by :mod:`symgrad.emit.inline`) so that the file stays standalone.

Conventions that make a module inlinable: ``import numpy as xp`` names the array module (an emitted
CuPy module imports ``cupy as xp`` instead); a module takes what it needs from a sibling with
``from .sibling import names`` (never renamed: inlined, all pieces share one namespace); settings
are module constants.

The shared pieces, and the NumPy modules' own, are at the top; a backend's own pieces are in its
folder and stand in for the top-level piece of the same name (each defines the same names):

* :mod:`conv`, :mod:`flat_shift` — ``jax.lax.conv_general_dilated``: its paths; :mod:`regroup`,
  :mod:`crop_pad`, :mod:`layout` — what every target's convolution shares;
* :mod:`dot_general` — ``jax.lax.dot_general``; :mod:`gemm` — GEMMs;
* :mod:`products`, :mod:`accumulate` — the convolution paths' sums of products;
* :mod:`threads` — how a convolution's (and a batched GEMM's) work is dealt out;
* :mod:`blockwise` — elementwise functions over cache-sized blocks, in double precision;
  :mod:`double_double` — float64 results in double-double; :mod:`erfc` — erfc of float64 arrays,
  accurate in the far tail;
* :mod:`inputs` — the inputs as arrays, checked; :mod:`tangents` — what a module's jvp takes;
  :mod:`owned` — results the caller may write to; :mod:`rows` — programs' leading axes and
  :mod:`upstream` — their upstream gradients; :mod:`add_terms` — a gradient's terms added in
  place; :mod:`total` — double backward's sums;
* ``numba/`` — compiled loops (:mod:`numba.jit`), cached on disk (:mod:`numba.cache`): an
  elementwise op's (:mod:`numba.elementwise`), a program's loop nests (:mod:`numba.nests`) and
  fused rows (:mod:`numba.fused_rows`), with the double-precision functions they call (:mod:`numba.exp`,
  :mod:`numba.erf`, :mod:`numba.tanh`);
* ``cupy/`` — :mod:`cupy.gemm` (cuBLAS), :mod:`cupy.accumulate`, :mod:`cupy.threads` (one stream
  over the whole batch), :mod:`cupy.fused` (elementwise kernels);
* ``torch/`` — the torch target: :mod:`torch.conv`, :mod:`torch.gemm` (torch's kernels),
  :mod:`torch.inputs`, :mod:`torch.layer` (nn.Conv*d's constructor), :mod:`torch.saved` (what the
  autograd functions keep, their jvp), :mod:`torch.native` (the native op, its vmap rule,
  autocast), :mod:`torch.within` (whether torch's own pointwise kernel may compute an elementwise
  form);
* ``jax/`` — the jax target: :mod:`jax.conv`, :mod:`jax.dot_general` (``jax.lax``), :mod:`jax.inputs`.
"""
