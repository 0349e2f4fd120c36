"""The code emitted modules run: ordinary, importable modules, tested as they are, and inlined
verbatim into each emitted file (by :mod:`symgrad.emit.inline`) so that the file stays standalone.

Conventions that make a module inlinable: ``import numpy as xp`` names the array module (an emitted
CuPy module imports ``cupy as xp`` instead); a module takes what it needs from a sibling with
``from .sibling import names`` (never renamed: inlined, all pieces share one namespace); settings
are module constants.  Pieces written for NumPy that the CuPy modules replace: :mod:`gemm_numpy`
(by :mod:`gemm_cupy`), :mod:`accumulate_numpy` (by :mod:`accumulate_cupy`) and :mod:`threads` (by
:mod:`stream`); each replacement defines the same names.

* :mod:`conv`, :mod:`flat_shift` — ``jax.lax.conv_general_dilated``: its paths;
* :mod:`dot_general` — ``jax.lax.dot_general``;
* :mod:`gemm_numpy`, :mod:`gemm_cupy`, :mod:`gemm_torch` — GEMMs; :mod:`accumulate`, :mod:`accumulate_numpy`,
  :mod:`accumulate_cupy` — the convolution paths' sums of products;
* :mod:`threads`, :mod:`stream` — how a convolution's (and a batched GEMM's) work is dealt out;
* :mod:`blockwise`, :mod:`jit`, :mod:`jit_erf`, :mod:`jit_tanh`, :mod:`jit_exp` — elementwise
  functions over cache-sized blocks, or as numba loops, in double precision;
* :mod:`erfc` — erfc of float64 arrays, accurate in the far tail; :mod:`inputs` — the inputs as
  arrays, checked; :mod:`tangents` — what a module's jvp takes;
* :mod:`fused` — CuPy elementwise kernels; :mod:`add_terms` — a gradient's terms added in place;
  :mod:`owned` — results the caller may write to; :mod:`rows` — programs' leading axes;
  :mod:`regroup`, :mod:`crop_pad`, :mod:`layout` —
  array-library agnostic pieces every target's convolution shares; :mod:`total` — double backward's
  sums;
* the framework targets' pieces: :mod:`torch_conv`, :mod:`gemm_torch` (torch's kernels),
  :mod:`torch_inputs`, :mod:`torch_layer` (nn.Conv*d's constructor), :mod:`torch_saved` (what the
  autograd functions keep, their jvp), :mod:`torch_native` (the native op, its vmap rule, autocast),
  :mod:`within` (whether torch's own pointwise kernel may compute an elementwise form);
  :mod:`jax_conv`, :mod:`jax_dot_general` (``jax.lax``),
  :mod:`jax_inputs`.
"""
