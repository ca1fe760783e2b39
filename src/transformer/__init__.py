"""transformer: the Transformer of "Attention Is All You Need" (Vaswani et al., 2017), from scratch.

Shape legend used in comments throughout the package:
    B batch, S source length, T target length, D d_model, H heads, Dk head dim (keys/queries),
    Dv head dim (values), F d_ff, V vocabulary, K beam, N queries, M keys.
Masks are bool and True means *masked* (the key is hidden from that query).
"""

__version__ = "0.1.0"
