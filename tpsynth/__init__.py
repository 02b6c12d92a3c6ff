"""tpsynth: evidence synthesis of myofascial trigger-point treatment trials.

Computation (``effect_sizes``, ``conversions``, ``pooling``, ``small_study``) is kept apart from
input/output (``sheets``, ``validate``, ``harmonise``, ``io``) and from plotting.
"""

__version__ = "0.1.0"

__all__ = ["MetaAnalysis", "meta_analysis"]


def __getattr__(name: str):
    """``from tpsynth import meta_analysis``: the public fit object (:mod:`tpsynth.meta`), imported
    on first use so that ``import tpsynth`` stays cheap for pipeline jobs that do not pool."""
    if name in __all__:
        from . import meta

        return getattr(meta, name)
    raise AttributeError(f"module 'tpsynth' has no attribute {name!r}")
