"""tpsynth: evidence synthesis of myofascial trigger-point treatment trials.

Computation (``effect_sizes``, ``conversions``, ``pooling``, ``small_study``) is kept apart from
input/output (``sheets``, ``validate``, ``harmonise``, ``io``) and from plotting.
"""

__version__ = "0.1.0"
