"""Which model kinds and heads the JAX backend computes, without importing jax.

:meth:`seqbench_jax.JaxBackend.supports` answers from these names; the
functions behind them live in :mod:`seqbench_jax.models` (``CELLS`` and
``HEADS``, keyed by the same names, and a test checks that the two agree).
Adding a kind is a cell step function there and its name here.
"""

from __future__ import annotations

from seqbench.contract import ModelSpec

KINDS: tuple[str, ...] = ("rnn", "lstm", "gru")
HEADS: tuple[str, ...] = ("regression", "classification")


def head_of(spec: ModelSpec) -> str:
    """The spec's output head (:attr:`ModelSpec.head`)."""
    return spec.head


def unsupported_kind(spec: ModelSpec) -> str | None:
    """Why the JAX backend cannot compute ``spec``'s kind or head, or None."""
    if spec.kind not in KINDS:
        return f"the jax backend has no {spec.kind!r} cell; it computes {', '.join(KINDS)}"
    head = head_of(spec)
    if head not in HEADS:
        return f"the jax backend has no {head!r} head; it computes {', '.join(HEADS)}"
    return None
