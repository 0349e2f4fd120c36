"""The audit's names, light to import: the CLI builds its parser from them without loading the audit
(its truth imports SymPy's and SciPy's evaluation machinery)."""

#: ``--ops`` name -> the families it selects
OPS = {"conv": ("conv", "conv_transpose", "conv_double"), "conv_transpose": ("conv_transpose",),
       "conv_double": ("conv_double",), "matmul": ("matmul",), "gelu": ("gelu",), "convolve": ("convolve",),
       **{name: (name,) for name in ("softmax", "log_softmax", "cross_entropy", "layer_norm", "rms_norm",
                                     "batch_norm", "attention", "avg_pool", "max_pool",
                                     "interpolate")}}
#: the dtypes a path can run in (float16 and bfloat16 judged in their own ulps)
DTYPES = ("float64", "float32", "float16", "bfloat16")
