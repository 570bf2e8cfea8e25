"""mamba-ssm's test conventions for the selective scan, on every CPU backend: a per-dtype grid (itype fp32 / fp16 / bf16
with fp32 weights), with and without z, D and delta_bias, softplus on and off, shared / per-token / grouped B and C,
the last state, lengths on and off the chunk size — outputs, last state and every gradient against an oracle.

The oracle below is written the way mamba-ssm's ``selective_scan_ref`` is (mamba_ssm/ops/selective_scan_interface.py):
the decays and inputs of all steps formed up front with einsums, then the recurrence one token at a time. It never
goes through ``zoo``. It gets the very same (possibly half-precision) tensors as the backend under test and upcasts
them itself, to fp64 rather than mamba's fp32 so that in the fp32 case the oracle's own rounding is negligible.
"""

import pytest
import torch
import torch.nn.functional as F

from zoo.kernels.selective_scan import SCAN_BACKENDS, selective_scan

# every backend that runs on CPU tensors, so that one added later is tested without touching this file; "auto" on CPU
# tensors takes the torch fallback, and is tested as what users call
CPU_BACKENDS = [b for b in SCAN_BACKENDS if b not in ("auto", "cuda")] + ["auto"]
ITYPES = [torch.float32, torch.float16, torch.bfloat16]
WTYPE = torch.float32  # A, D, delta_bias and a shared (D, N) B / C: mamba-ssm's test keeps these fp32 (its `wtype`)
# which of B / C vary per token: (B's kind, C's kind), each "shared" (D, N), "token" (B, N, L) or "grouped" (B, G, N, L)
BC_KINDS = {
    "shared": ("shared", "shared"),
    "token": ("token", "token"),
    "B_token_C_shared": ("token", "shared"),
    "B_shared_C_token": ("shared", "token"),
    "grouped": ("grouped", "grouped"),
}
BATCH, DIM, DSTATE, GROUPS = 2, 4, 8, 2  # batch 2, dim 4, dstate 8 as in mamba-ssm's test_selective_scan


# ---------------------------------------------------------------------------------------------------------- oracle


def oracle_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, return_last_state=False,
                compute_dtype=torch.float64):
    """mamba-ssm's selective_scan_ref, restated: upcast, einsum the per-step decay exp(Δ·A) and input Δ·B·u for all
    steps, then x_t = decay_t ⊙ x_{t−1} + input_t and y_t = ⟨x_t, C_t⟩ per token. Out in u's dtype, state in fp32."""
    out_dtype = u.dtype
    cd = compute_dtype
    u, delta, A = u.to(cd), delta.to(cd), A.to(cd)
    if delta_bias is not None:
        delta = delta + delta_bias.to(cd)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape

    def per_channel(M):
        """(D, N) stays as is; (B, N, L) stays; (B, G, N, L) → (B, D, N, L), each group serving D/G channels."""
        M = M.to(cd)
        if M.dim() == 4:
            M = M.repeat_interleave(dim // M.shape[1], dim=1)
        return M

    B, C = per_channel(B), per_channel(C)
    decay = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    if B.dim() == 2:
        drive = torch.einsum("bdl,dn,bdl->bdln", delta, B, u)
    elif B.dim() == 3:
        drive = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    else:
        drive = torch.einsum("bdl,bdnl,bdl->bdln", delta, B, u)
    x = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for i in range(length):
        x = decay[:, :, i] * x + drive[:, :, i]
        if C.dim() == 2:
            ys.append(torch.einsum("bdn,dn->bd", x, C))
        elif C.dim() == 3:
            ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]))
        else:
            ys.append(torch.einsum("bdn,bdn->bd", x, C[:, :, :, i]))
    y = torch.stack(ys, dim=2)
    if D is not None:
        y = y + u * D.to(cd)[:, None]
    if z is not None:
        y = y * F.silu(z.to(cd))
    out = y.to(out_dtype)
    return (out, x.float()) if return_last_state else out


# ---------------------------------------------------------------------------------------------------------- tolerances


def tolerances(itype, has_z):
    """mamba-ssm tests/ops/test_selective_scan.py::test_selective_scan: (rtol, atol) = (6e-4, 2e-3) for fp32, (3e-3,
    5e-3) for fp16, (3e-2, 5e-2) for bf16 on out and state; weights' gradients (1e-3, 1e-3), raised to the input
    tolerance when z is present ("the errors on the weights seem higher"). Gradient rules, as there:
    du ×2 / ×2, ddelta ×5 / ×10, dA (rtolw, 5·atolw), a per-token dB / dC at the input tolerance and a shared one at
    the weight tolerance, dD / dz / ddelta_bias at the weight tolerance."""
    rtol, atol = {torch.float32: (6e-4, 2e-3), torch.float16: (3e-3, 5e-3), torch.bfloat16: (3e-2, 5e-2)}[itype]
    rtolw, atolw = 1e-3, 1e-3
    if has_z:
        rtolw, atolw = max(rtolw, rtol), max(atolw, atol)
    return rtol, atol, rtolw, atolw


def grad_tolerances(itype, has_z, bc_kinds):
    rtol, atol, rtolw, atolw = tolerances(itype, has_z)
    b_kind, c_kind = bc_kinds
    return {
        "u": (rtol * 2, atol * 2),
        "delta": (rtol * 5, atol * 10),
        "A": (rtolw, atolw * 5),
        "B": (rtolw, atolw) if b_kind == "shared" else (rtol, atol),
        "C": (rtolw, atolw) if c_kind == "shared" else (rtol, atol),
        "D": (rtolw, atolw),
        "z": (rtolw, atolw),
        "delta_bias": (rtolw, atolw),
    }


# ---------------------------------------------------------------------------------------------------------- inputs


def make_inputs(itype, length, bc="token", has_z=True, has_D=True, has_delta_bias=True, seed=0):
    """mamba-ssm's recipe: A = −0.5·rand (fp32), u, z ~ N(0, 1) and delta = 0.5·rand in itype, D ~ N(0, 1) and
    delta_bias = 0.5·rand in fp32, a shared B / C fp32 and a per-token one in itype. Leaves, keyed by name."""
    g = torch.Generator().manual_seed(seed)
    randn = lambda *s, dtype: torch.randn(*s, generator=g).to(dtype).requires_grad_()  # noqa: E731
    rand = lambda *s, dtype, scale: (scale * torch.rand(*s, generator=g)).to(dtype).requires_grad_()  # noqa: E731
    b_kind, c_kind = BC_KINDS[bc]

    def bc_tensor(kind):
        if kind == "shared":
            return randn(DIM, DSTATE, dtype=WTYPE)
        if kind == "token":
            return randn(BATCH, DSTATE, length, dtype=itype)
        return randn(BATCH, GROUPS, DSTATE, length, dtype=itype)

    x = dict(
        u=randn(BATCH, DIM, length, dtype=itype),
        delta=rand(BATCH, DIM, length, dtype=itype, scale=0.5),
        A=rand(DIM, DSTATE, dtype=WTYPE, scale=-0.5),
        B=bc_tensor(b_kind),
        C=bc_tensor(c_kind),
        D=randn(DIM, dtype=WTYPE) if has_D else None,
        z=randn(BATCH, DIM, length, dtype=itype) if has_z else None,
        delta_bias=rand(DIM, dtype=WTYPE, scale=0.5) if has_delta_bias else None,
    )
    return x


def clone_leaves(x):
    return {k: (v.detach().clone().requires_grad_() if v is not None else None) for k, v in x.items()}


def call(fn, x, **kw):
    return fn(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], x["z"], x["delta_bias"], **kw)


def _close(name, got, want, rtol, atol):
    diff = (got.double() - want.double()).abs().max().item() if got.numel() else 0.0
    assert torch.allclose(got, want, rtol=rtol, atol=atol), f"{name}: max abs diff {diff:.3g} (rtol {rtol}, atol {atol})"


def check_against_oracle(backend, itype, length, bc, has_z, has_D, has_delta_bias, delta_softplus,
                         return_last_state, seed=0):
    x = make_inputs(itype, length, bc, has_z, has_D, has_delta_bias, seed=seed)
    x_ref = clone_leaves(x)
    kw = dict(delta_softplus=delta_softplus, return_last_state=return_last_state)
    got = call(selective_scan, x, backend=backend, **kw)
    want = call(oracle_scan, x_ref, **kw)
    if not return_last_state:
        got, want = (got,), (want,)
    rtol, atol, _, _ = tolerances(itype, has_z)

    # dtypes: out in u's dtype, the state in fp32 (mamba-ssm's contract)
    assert got[0].dtype == itype and got[0].shape == (BATCH, DIM, length)
    _close("out", got[0], want[0], rtol, atol)
    if return_last_state:
        assert got[1].dtype == torch.float32 and got[1].shape == (BATCH, DIM, DSTATE)
        _close("last_state", got[1], want[1], rtol, atol)

    # every gradient, through the output and (when returned) the last state
    g = torch.Generator().manual_seed(seed + 1)
    cotangents = [torch.randn(t.shape, generator=g).to(t.dtype) for t in got]
    names = [k for k, v in x.items() if v is not None]
    grads = torch.autograd.grad(got, [x[k] for k in names], cotangents)
    grads_ref = torch.autograd.grad(want, [x_ref[k] for k in names], cotangents)
    tols = grad_tolerances(itype, has_z, BC_KINDS[bc])
    for name, gr, gw in zip(names, grads, grads_ref):
        assert gr.dtype == x[name].dtype, f"d{name} is {gr.dtype}, but {name} is {x[name].dtype}"
        assert gr.shape == x[name].shape
        _close(f"d{name}", gr, gw.to(gr.dtype), *tols[name])


# ---------------------------------------------------------------------------------------------------------- the grid

# Full Cartesian product of the flags at one length (128: mamba-ssm's base seqlen, two whole chunks of the chunked
# path), then spot checks at lengths off the chunk size with everything switched on.


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("itype", ITYPES, ids=lambda t: str(t).removeprefix("torch."))
@pytest.mark.parametrize("bc", ["shared", "token"])
@pytest.mark.parametrize("has_z", [False, True], ids=["no_z", "z"])
@pytest.mark.parametrize("has_D", [False, True], ids=["no_D", "D"])
@pytest.mark.parametrize("has_delta_bias", [False, True], ids=["no_bias", "bias"])
@pytest.mark.parametrize("delta_softplus", [False, True], ids=["no_softplus", "softplus"])
@pytest.mark.parametrize("return_last_state", [False, True], ids=["out", "out_state"])
def test_grid_at_128(backend, itype, bc, has_z, has_D, has_delta_bias, delta_softplus, return_last_state):
    check_against_oracle(backend, itype, 128, bc, has_z, has_D, has_delta_bias, delta_softplus, return_last_state)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("itype", ITYPES, ids=lambda t: str(t).removeprefix("torch."))
@pytest.mark.parametrize("bc", list(BC_KINDS))
@pytest.mark.parametrize("length", [1, 7, 300])
def test_lengths_and_bc_layouts(backend, itype, bc, length):
    """1 token, fewer than a chunk, and 300 = 4 chunks + 44; B / C in every layout; all extras on, softplus on."""
    check_against_oracle(backend, itype, length, bc, has_z=True, has_D=True, has_delta_bias=True,
                         delta_softplus=True, return_last_state=True)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("itype", ITYPES, ids=lambda t: str(t).removeprefix("torch."))
def test_grouped_without_extras(backend, itype):
    """Grouped B / C with no z / D / bias, no softplus and no state: the bare recurrence, off the chunk size."""
    check_against_oracle(backend, itype, 77, "grouped", has_z=False, has_D=False, has_delta_bias=False,
                         delta_softplus=False, return_last_state=False)


# ---------------------------------------------------------------------------------------------------------- the oracle


def test_oracle_is_the_recurrence_written_out():
    """The oracle itself, two tokens by hand: x1 = Δ1·B·u1, x2 = exp(Δ2·A)·x1 + Δ2·B·u2, y = ⟨x, C⟩ + D·u, out = y·silu(z)."""
    u = torch.tensor([[[1.0, -2.0]]])
    delta = torch.tensor([[[0.5, 0.25]]])
    A, B, C, D = torch.tensor([[-1.0]]), torch.tensor([[2.0]]), torch.tensor([[3.0]]), torch.tensor([0.1])
    z = torch.tensor([[[0.3, -0.7]]])
    out, state = oracle_scan(u, delta, A, B, C, D, z, return_last_state=True)
    x1 = 0.5 * 2.0 * 1.0
    x2 = torch.exp(torch.tensor(-0.25)) * x1 + 0.25 * 2.0 * -2.0
    y = torch.stack([torch.tensor(3 * x1 + 0.1), 3 * x2 - 0.2]) * F.silu(z[0, 0])
    torch.testing.assert_close(out[0, 0], y)
    torch.testing.assert_close(state, x2.reshape(1, 1, 1))


# ---------------------------------------------------------------------------------------------------------- bad shapes


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_bad_shapes_raise_exact_errors(backend):
    """The shape checks not already covered in test_selective_scan.py (that file checks groups not dividing dim)."""
    x = {k: (v.detach() if v is not None else None) for k, v in make_inputs(torch.float32, 8).items()}

    def scan(**over):
        return call(selective_scan, {**x, **over}, backend=backend)

    with pytest.raises(ValueError, match=r"^u and delta must both be \(batch, dim, seq_len\); got \(2, 4, 8\), \(2, 4, 7\)$"):
        scan(delta=x["delta"][..., :7])
    with pytest.raises(ValueError, match=r"^u and delta must both be \(batch, dim, seq_len\); got \(4, 8\), \(4, 8\)$"):
        scan(u=x["u"][0], delta=x["delta"][0])
    with pytest.raises(ValueError, match=r"^A has 3 rows but u has dim 4$"):
        scan(A=x["A"][:3])
    with pytest.raises(ValueError, match=r"^complex A is not supported; give a real \(D, N\) A$"):
        scan(A=x["A"].to(torch.complex64))
    with pytest.raises(ValueError, match=r"^B must be \(D, N\), \(B, N, L\) or \(B, G, N, L\); got \(4,\)$"):
        scan(B=x["B"][0, :4, 0])
    with pytest.raises(ValueError, match=r"^C must be \(D, N\), \(B, N, L\) or \(B, G, N, L\); got \(1, 2, 2, 8, 8\)$"):
        scan(C=x["C"].reshape(1, 2, 1, 8, 8).expand(1, 2, 2, 8, 8))
