"""Block, mixer registry and layouts."""

import pytest
import torch

import zoo.mixers  # noqa: F401  (registers the built-in mixers)
from zoo.block import Block, SeqContext, expand_layout
from zoo.layers import RMSNorm
from zoo.registry import MIXERS, register_mixer


def test_layout_strings_and_lists_expand_to_n_layer():
    assert expand_layout("attention", 3) == ["attention"] * 3
    assert expand_layout(["attention"] * 4, 4) == ["attention"] * 4
    assert expand_layout("attention*2", 4) == ["attention"] * 4


def test_layout_errors_name_the_problem():
    with pytest.raises(KeyError, match="unknown mixer 'mamab'; registered: attention, .*mamba"):
        expand_layout("mamab*7,attention", 8)
    with pytest.raises(ValueError, match="does not divide n_layer=5"):
        expand_layout("attention*2", 5)
    with pytest.raises(ValueError, match="should look like 'name' or 'name\\*count'"):
        expand_layout("attention*x", 2)


def test_new_mixer_plugs_into_block_without_touching_it():
    @register_mixer("test_shift")
    class Shift(torch.nn.Module):
        """Causal token shift: output t is input t-1 — enough to show the registry contract."""

        def __init__(self, d_model):
            super().__init__()

        def forward(self, x, ctx, state=None):
            return torch.nn.functional.pad(x, (0, 0, 1, 0))[:, :-1]

    try:
        assert expand_layout("test_shift,attention", 4) == ["test_shift", "attention"] * 2
        block = Block(8, "test_shift", mlp="none")
        x = torch.randn(2, 5, 8)
        y = block(x, SeqContext())
        torch.testing.assert_close(y[:, 1:], x[:, 1:] + block.norm1(x)[:, :-1])
        assert block.mlp is None
    finally:
        MIXERS._entries.pop("test_shift")


def test_block_is_prenorm_residual_with_gelu_or_swiglu():
    for mlp in ("swiglu", "gelu"):
        block = Block(16, "attention", {"n_head": 2}, mlp=mlp, d_ff=32)
        x = torch.randn(1, 7, 16)
        with torch.no_grad():
            h = x + block.mixer(block.norm1(x), SeqContext())
            want = h + block.mlp(block.norm2(h))
            torch.testing.assert_close(block(x, SeqContext()), want)


def test_rmsnorm_matches_formula():
    norm = RMSNorm(6, eps=1e-5)
    norm.weight.data = torch.arange(6.0)
    x = torch.randn(3, 6)
    torch.testing.assert_close(norm(x), norm.weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))


def test_post_norm_block_follows_the_original_transformer_order():
    block = Block(16, "attention", {"n_head": 2}, d_ff=32, norm="layernorm", norm_position="post")
    x = torch.randn(1, 7, 16)
    with torch.no_grad():
        h = block.norm1(x + block.mixer(x, SeqContext()))
        want = block.norm2(h + block.mlp(h))
        torch.testing.assert_close(block(x, SeqContext()), want)
    with pytest.raises(ValueError, match="norm_position must be 'pre' or 'post', got 'middle'"):
        Block(16, "attention", {"n_head": 2}, norm_position="middle")
