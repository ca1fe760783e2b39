"""The exercise's own check cells (seeds/000: its `assert torch.allclose(...)` cells and its
`benchmark(...)` calls), run against `transformer.attention` unchanged. The cells are copied
from the exercise as they are; only `n_tries` is made small, and the two `heads_attention_with_
einops` functions that the exercise itself defines (in its section 4) are defined here too (fed
bool masks: see `test_section_4_einops_cells`)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from transformer.attention import (
    benchmark,
    heads_attention,
    multi_head_attention,
    multi_head_attention_einops,
    queries_attention,
    scale_dot_product_attention,
    slow_heads_attention,
    slow_multi_head_attention,
    slow_queries_attention,
)

d_k = 64
d_v = 64
N_queries = 32
M_keys = 32
n_head = 8
batch_size = 32
N_TRIES = 3  # the exercise uses 100


def a1_generator():
    while True:
        Q = torch.rand(N_queries, d_k)
        K = torch.rand(M_keys, d_k)
        V = torch.rand(M_keys, d_v)
        mask = torch.randint(low=0, high=2, size=(N_queries, M_keys))
        yield (Q, K, V, mask)


def a2_generator():
    while True:
        Q = torch.rand(N_queries, n_head, d_k)
        K = torch.rand(M_keys, n_head, d_k)
        V = torch.rand(M_keys, n_head, d_v)
        mask = torch.randint(low=0, high=2, size=(N_queries, M_keys))
        yield (Q, K, V, mask)


def a3_generator():
    while True:
        Q = torch.rand(batch_size, N_queries, n_head, d_k)
        K = torch.rand(batch_size, M_keys, n_head, d_k)
        V = torch.rand(batch_size, M_keys, n_head, d_v)
        mask = torch.randint(low=0, high=2, size=(batch_size, N_queries, M_keys))
        yield (Q, K, V, mask)


def heads_attention_with_einops1(Q, K, V, mask):
    N, n_head, d_k = Q.shape  # noqa: RUF059 (as in the exercise)
    Q = rearrange(Q, "N n_head d_k -> n_head N d_k")
    K = rearrange(K, "M n_head d_k -> n_head M d_k")
    V = rearrange(V, "M n_head d_k -> n_head M d_k")
    similar_score = torch.einsum("hnd,hmd->hnm", Q, K) / (d_k**0.5)
    similar_score = similar_score.masked_fill(mask, value=float("-inf"))
    attention_weight = F.softmax(similar_score, dim=-1)
    attentions = torch.einsum("hnm,hmd->hnd", attention_weight, V)
    attentions = rearrange(attentions, "n_head N d_v -> N n_head d_v")
    return attentions


def heads_attention_with_einops2(Q, K, V, mask):
    N, n_head, d_k = Q.shape  # noqa: RUF059 (as in the exercise)
    similar_score = torch.einsum("nhd,mhd->hnm", Q, K) / (d_k**0.5)
    similar_score = similar_score.masked_fill(mask, value=float("-inf"))
    attention_weight = F.softmax(similar_score, dim=-1)
    attentions = torch.einsum("hnm, mhd->nhd", attention_weight, V)
    return attentions


def _assert_benchmark_printed(capsys):
    out = capsys.readouterr().out
    assert "Your output is correct" in out
    assert "Speedup:" in out


def test_single_query_cell():
    q = torch.rand(1, d_k)
    K = torch.rand(M_keys, d_k)
    V = torch.rand(M_keys, d_v)
    mask = torch.randint(low=0, high=2, size=(1, M_keys)).bool()
    mask[0, 0] = False  # at least one visible key: the exercise's softmax would give NaN
    assert scale_dot_product_attention(q, K, V, mask).shape == (1, d_v)
    similar = q @ K.T * d_k**-0.5
    expected = F.softmax(similar.masked_fill(mask, float("-inf")), dim=-1) @ V
    assert torch.allclose(scale_dot_product_attention(q, K, V, mask), expected)


def test_section_1_queries_cells(capsys):
    Q = torch.rand(N_queries, d_k)
    K = torch.rand(M_keys, d_k)
    V = torch.rand(M_keys, d_v)
    mask = torch.randint(low=0, high=2, size=(N_queries, M_keys)).bool()
    slow_attn = slow_queries_attention(Q, K, V, mask)
    parl_attn = queries_attention(Q, K, V, mask)
    assert parl_attn.shape == slow_attn.shape
    assert torch.allclose(parl_attn, slow_attn)
    benchmark(a1_generator(), slow_queries_attention, queries_attention, n_tries=N_TRIES)
    _assert_benchmark_printed(capsys)


def test_section_2_heads_cells(capsys):
    Q = torch.rand(N_queries, n_head, d_k)
    K = torch.rand(M_keys, n_head, d_k)
    V = torch.rand(M_keys, n_head, d_v)
    mask = torch.randint(low=0, high=2, size=(N_queries, M_keys)).bool()
    slow_attn = slow_heads_attention(Q, K, V, mask)
    parl_attn = heads_attention(Q, K, V, mask)
    assert parl_attn.shape == slow_attn.shape
    assert torch.allclose(parl_attn, slow_attn)
    benchmark(a2_generator(), slow_heads_attention, heads_attention, n_tries=N_TRIES)
    _assert_benchmark_printed(capsys)


def test_section_3_batch_cells(capsys):
    Q = torch.rand(batch_size, N_queries, n_head, d_k)
    K = torch.rand(batch_size, M_keys, n_head, d_k)
    V = torch.rand(batch_size, M_keys, n_head, d_v)
    mask = torch.randint(low=0, high=2, size=(batch_size, N_queries, M_keys)).bool()
    slow_attn = slow_multi_head_attention(Q, K, V, mask)
    parl_attn = multi_head_attention(Q, K, V, mask)
    assert parl_attn.shape == slow_attn.shape
    assert torch.allclose(slow_attn, parl_attn)
    benchmark(a3_generator(), slow_multi_head_attention, multi_head_attention, n_tries=1)
    _assert_benchmark_printed(capsys)


def test_section_4_einops_cells(capsys):
    # The exercise's own two functions call `masked_fill` with the generator's integer mask,
    # which today's torch refuses ("masked_fill_ only supports boolean masks"; the notebook ran
    # on a 2021 torch): they get the same mask as bool. The library's functions take both.
    bool_masks = ((Q, K, V, mask.bool()) for Q, K, V, mask in a2_generator())
    for fast in (heads_attention_with_einops1, heads_attention_with_einops2):
        benchmark(bool_masks, slow_heads_attention, fast, n_tries=N_TRIES)
        _assert_benchmark_printed(capsys)
    benchmark(a3_generator(), slow_multi_head_attention, multi_head_attention_einops, n_tries=1)
    _assert_benchmark_printed(capsys)


def test_benchmark_rejects_disagreeing_functions(capsys):
    def wrong(Q, K, V, mask):
        return queries_attention(Q, K, V, mask) + 1e-3

    with pytest.raises(AssertionError, match="differ"):
        benchmark(a1_generator(), slow_queries_attention, wrong, n_tries=2)
