"""Truncated (local-window) attention, where a query at ``i`` sees the keys
``i - left <= j <= i + right``, is computed blockwise by :func:`local_attention` in
O(T·w) time and memory: queries go in blocks of :data:`BLOCK`, each block attends to its
own span of keys widened by ``left`` and ``right`` (an ``unfold`` view), and a small
``(BLOCK, BLOCK + left + right)`` band mask is the same for every block. Blocks go to the
fused kernel in chunks, and the backward recomputes each chunk, so only the output and
the gradients are ever full size. No ``T x T`` tensor exists on that path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from attnlab.errors import ConfigError

BLOCK = 64
"""Queries per block. 32 and 64 were fastest on CPU for windows of 16 to 256 frames a
side (``benchmarks/truncated_attention.py``); larger blocks waste work on masked keys."""

CHUNK_SCORES = 2**16
"""About how many query-key scores one fused-attention call covers (at least one block of
every sequence and head). Blocks go to the kernel in chunks so that the temporaries (key
spans, masks, their gradients) stay small next to the output and the gradients: at T=16k,
batch 1, 4 heads, a forward and backward adds 64 MiB, just the output and the three
gradients, where 2**17 added 64-65 MiB and 2**19 73 MiB, for about 20% (2**17: 10%) more
time than 2**19 (``benchmarks/truncated_attention.py``)."""


def window_sides(window: int | None, left: int | None, right: int | None) -> tuple[int, int] | None:
    """Frames of context ``(left, right)`` from the config keys, or None for full attention.

    ``window`` sets both sides; ``left`` and ``right`` set one each and must come together
    (or agree with ``window``), so that no setting silently means "unbounded on one side".
    """
    key = "backbone.attention"
    if window is not None and window <= 0:
        raise ConfigError(f"{key}.window={window} must be a positive number of frames; use null for full attention")
    for name, value in (("left", left), ("right", right)):
        if value is not None and value < 0:
            raise ConfigError(f"{key}.{name}={value} must be >= 0 frames; use null for full attention")
        if window is not None and value is not None and value != window:
            raise ConfigError(
                f"{key}.window={window} disagrees with {key}.{name}={value}; "
                "set window alone (symmetric) or left and right alone"
            )
    if window is not None:
        return window, window
    if left is None and right is None:
        return None
    if left is None or right is None:
        given, missing = ("left", "right") if right is None else ("right", "left")
        raise ConfigError(
            f"{key}.{given}={left if right is None else right} is set but {key}.{missing} is null; set both "
            f"(or {key}.window for a symmetric window); null everywhere is full attention"
        )
    if left == 0 and right == 0:
        raise ConfigError(f"{key}.left=0 and right=0 let each frame see only itself; give one side some frames")
    return left, right


def band_mask(t: int, left: int, right: int, key_mask: Tensor | None, device: torch.device) -> Tensor:
    """Dense ``(B or 1, 1, T, T)`` mask of truncated attention, True where query ``i`` may see key ``j``.

    Only for returning attention maps: it is O(T²). A padded query sees itself too, so no
    row is empty (an empty row would make the softmax NaN); real queries see real keys only.
    """
    idx = torch.arange(t, device=device)
    keys, queries = idx[None, :], idx[:, None]  # broadcast, so the only T x T tensors are bool
    allowed = (keys >= queries - left) & (keys <= queries + right)  # (T, T)
    if key_mask is None:
        return allowed[None, None]  # (1, 1, T, T)
    seen = key_mask[:, None, :] | torch.eye(t, dtype=torch.bool, device=device)  # (B, T, T)
    return (allowed & seen)[:, None]  # (B, 1, T, T)


@dataclass(frozen=True, eq=False)
class _Plan:
    """How one :func:`local_attention` call is cut into blocks and chunks."""

    left: int
    right: int
    block: int
    dropout_p: float
    band: Tensor
    """Bool ``(Q, S)``: slot ``s`` of a block's key span is key ``block start - left + s``, so
    query ``i`` of the block sees slots ``i <= s <= i + left + right``, in every block."""
    band_bias: Tensor
    """``band`` as the additive float mask (0 or -inf) of every block inside the sequence."""

    @classmethod
    def make(cls, left: int, right: int, block: int, dropout_p: float, like: Tensor) -> _Plan:
        rows = torch.arange(block, device=like.device)[:, None]  # (Q, 1)
        slots = torch.arange(block + left + right, device=like.device)[None, :]  # (1, S)
        band = (slots >= rows) & (slots <= rows + left + right)  # (Q, S)
        return cls(left, right, block, dropout_p, band, _bias(band, like.dtype))

    @property
    def span(self) -> int:
        """Keys one query block sees: its own ``block`` plus ``left`` and ``right``."""
        return self.block + self.left + self.right

    def chunks(self, b: int, h: int, t: int) -> list[tuple[int, int]]:
        """Query row ranges ``[r0, r1)``, a whole number of blocks each (the last may be short)."""
        blocks = max(1, CHUNK_SCORES // (b * h * self.block * self.span))
        step = blocks * self.block
        return [(r0, min(r0 + step, t)) for r0 in range(0, t, step)]

    def keys(self, r0: int, r1: int, t: int) -> tuple[int, int]:
        """The key rows ``[a, e)`` that queries ``[r0, r1)`` can see."""
        return max(r0 - self.left, 0), min(r1 + self.right, t)


def _bias(allowed: Tensor, dtype: torch.dtype) -> Tensor:
    """An additive mask: 0 where allowed, -inf elsewhere. Made here rather than by the
    fused kernel (which converts bool masks) so the bool mask is gone before the call."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, float("-inf"))


def _chunk_mask(key_mask: Tensor | None, plan: _Plan, r0: int, blocks: int, t: int, like: Tensor) -> Tensor:
    """Additive mask ``(Q, S)``, ``(1, G, Q, S)`` or ``(B*H, G, Q, S)`` for ``G`` blocks from row ``r0``.

    Besides the band, slots off the sequence or on padding are masked, except the query's
    own slot ``i + left``: a padded query then sees itself and no row is empty (no NaN).
    """
    q, s = plan.block, plan.span
    if key_mask is None and r0 - plan.left >= 0 and r0 + blocks * q + plan.right <= t:
        return plan.band_bias  # an inner chunk: every slot is a real key
    pos = torch.arange(r0 - plan.left, r0 + blocks * q + plan.right, device=like.device).unfold(0, s, q)  # (G, S)
    real = (pos >= 0) & (pos < t)  # (G, S)
    real = real[None] if key_mask is None else real & key_mask[:, pos.clamp(0, t - 1)]  # (B or 1, G, S)
    idx = torch.arange(s, device=like.device)
    own = idx[None, :] == idx[:q, None] + plan.left  # (Q, S): the query's own slot
    allowed = plan.band & (real[:, :, None, :] | own)  # (B or 1, G, Q, S)
    if allowed.shape[0] > 1:
        heads = like.shape[1]
        allowed = allowed[:, None].expand(-1, heads, -1, -1, -1).reshape(-1, blocks, q, s)  # (B*H, G, Q, S)
    return _bias(allowed, like.dtype)


def _pad_rows(x: Tensor, before: int, after: int) -> Tensor:
    """Zero rows around the token axis of ``(B, H, n, d)``; no copy when none are needed."""
    return F.pad(x, (0, 0, before, after)) if before or after else x


def _attend_chunk(
    q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None, plan: _Plan, r0: int, a: int, t: int
) -> Tensor:
    """Truncated attention of the query rows ``q`` ``(B, H, n, d)`` starting at ``r0``.

    ``k`` and ``v`` ``(B, H, m, d)`` are the key rows from ``a`` on that these queries can
    see. Returns ``(B, H, n, d)``.
    """
    b, h, n, d = q.shape
    blk = plan.block
    blocks = -(-n // blk)
    rows = blocks * blk
    pad_left = a - (r0 - plan.left)  # key slots before the sequence start
    pad_right = r0 + rows + plan.right - (a + k.shape[2])  # slots past its end or the last block
    qb = _pad_rows(q, 0, rows - n).reshape(b * h, blocks, blk, d)  # (B*H, G, Q, d)
    kb, vb = (
        _pad_rows(x, pad_left, pad_right)
        .reshape(b * h, rows + plan.left + plan.right, d)  # (B*H, G*Q + left + right, d)
        .unfold(1, plan.span, blk)  # (B*H, G, d, S): overlapping spans, a view
        .transpose(-1, -2)  # (B*H, G, S, d)
        for x in (k, v)
    )
    mask = _chunk_mask(key_mask, plan, r0, blocks, t, q)
    out = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask, dropout_p=plan.dropout_p)  # (B*H, G, Q, d)
    return out.view(b, h, rows, d)[:, :, :n]  # (B, H, n, d)


def _rng_state(x: Tensor) -> tuple[Tensor, Tensor | None]:
    device_state = torch.get_device_module(x.device).get_rng_state(x.device) if x.device.type != "cpu" else None
    return torch.get_rng_state(), device_state


@contextmanager
def _replayed_rng(state: tuple[Tensor, Tensor | None] | None, device: torch.device) -> Iterator[None]:
    """Run with the random state of the forward (so dropout draws the same masks), then
    put the caller's state back. Does nothing when the forward drew no random numbers."""
    if state is None:
        yield
        return
    devices = [device] if device.type != "cpu" else []
    with torch.random.fork_rng(devices, device_type=device.type if devices else None):
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.get_device_module(device).set_rng_state(state[1], device)
        yield


class _LocalAttention(torch.autograd.Function):
    """Chunked truncated attention whose backward recomputes each chunk.

    Autograd through the chunks would keep every chunk's key spans, masks and span-shaped
    gradients alive at once, several times the output's size. Recomputing a chunk's forward
    in the backward (as activation checkpointing does, with the same random state for
    dropout) keeps only the output and the three gradients full size.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None, plan: _Plan) -> Tensor:
        b, h, t, d = q.shape
        ctx.rng = _rng_state(q) if plan.dropout_p > 0 else None
        out = q.new_empty(b, t, h, d)  # (B, T, H, d): SelfAttention reshapes it to (B, T, D) without a copy
        for r0, r1 in plan.chunks(b, h, t):
            a, e = plan.keys(r0, r1, t)
            chunk = _attend_chunk(q[:, :, r0:r1], k[:, :, a:e], v[:, :, a:e], key_mask, plan, r0, a, t)
            out[:, r0:r1] = chunk.transpose(1, 2)  # (B, n, H, d)
        ctx.save_for_backward(q, k, v, key_mask)
        ctx.plan = plan
        return out.transpose(1, 2)  # (B, H, T, d)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        q, k, v, key_mask = ctx.saved_tensors
        plan: _Plan = ctx.plan
        b, h, t, _ = q.shape
        grad_q, grad_k, grad_v = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
        with _replayed_rng(ctx.rng, q.device):
            for r0, r1 in plan.chunks(b, h, t):
                a, e = plan.keys(r0, r1, t)
                with torch.enable_grad():
                    parts = [x.detach().requires_grad_() for x in (q[:, :, r0:r1], k[:, :, a:e], v[:, :, a:e])]
                    out = _attend_chunk(*parts, key_mask, plan, r0, a, t)
                    dq, dk, dv = torch.autograd.grad(out, parts, grad_out[:, :, r0:r1])
                grad_q[:, :, r0:r1] = dq
                grad_k[:, :, a:e] += dk  # the key rows of neighbouring chunks overlap
                grad_v[:, :, a:e] += dv
        return grad_q, grad_k, grad_v, None, None


def local_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    left: int,
    right: int,
    key_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    block: int = BLOCK,
) -> Tensor:
    """Truncated attention, blockwise in O(T·(block + left + right)) time and memory.

    Exactly the softmax over the keys ``i - left <= j <= i + right`` of each query ``i``
    (and, with ``key_mask``, only the real ones; a padded query also sees itself, so no
    output is NaN). No ``T x T`` tensor is made.

    Args:
        q: queries ``(B, H, T, d)``; ``k``, ``v``: keys and values of the same shape.
        left: frames of context before each query.
        right: frames of context after each query.
        key_mask: bool ``(B, T)``, True for real tokens; None when all are real.
        dropout_p: dropout on the attention weights.
        block: queries per block.

    Returns:
        The attended values ``(B, H, T, d)`` (a view of a ``(B, T, H, d)`` tensor).
    """
    t = q.shape[2]
    plan = _Plan.make(min(left, t - 1), min(right, t - 1), block, dropout_p, like=q)
    return _LocalAttention.apply(q, k, v, key_mask, plan)
