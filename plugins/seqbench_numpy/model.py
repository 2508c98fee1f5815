"""SimpleRNN, LSTM and GRU in NumPy with full backpropagation through time.

Made for speed as well as clarity, since it is also benchmarked:

* data are kept unit-major, ``(steps, units, batch)``, so each gate of a
  time step is a contiguous block;
* the input projection of all steps is one matrix product, hoisted out of
  the time loop, and so are the weight gradients: the backward sweep only
  stores each step's pre-activation gradient, and ``dW = X^T dZ`` is one
  large product afterwards;
* every per-step buffer is allocated once per batch size and reused with
  ``out=`` arguments;
* LSTM gates are held internally in the order input, forget, output,
  candidate, so the three sigmoids are one call on contiguous columns; the
  canonical order (input, forget, candidate, output) is restored on export;
* the GRU keeps the canonical order (update, reset, candidate): its two
  sigmoids are already contiguous;
* the head is ``Dense(outputs)`` with MSE (regression) or softmax
  cross-entropy (classification), see :func:`head_loss`.

Stacked, bidirectional and variable-length models (``ModelSpec.blocks``)
run each block (a layer's direction) with the same code:

* the backward direction runs forward over its input reversed *per sample*:
  the first ``length`` steps in reverse order, the padding left where it
  is; its outputs are reversed back the same way, so both directions'
  outputs line up in time for the layer above;
* every sequence is padded at its end, so a block's output for a sample is
  its state after the sample's last real step, ``h[length]``, and the steps
  past it are computed but never read.  In the backward sweep they receive
  no gradient (nothing is injected there), so they change neither the loss
  nor any gradient: the result is the model's on the unpadded sample
  exactly (the padding's values never matter);
* a layer above the first passes the gradient of its input at every step
  down (``inject``), where a single layer receives only the head's gradient
  at its last step.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from seqbench.contract import LayerWeights, ModelBase, ModelSpec, Weights


def _relu(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0, out=out)


def _sigmoid(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


class _Buffers:
    """Work arrays for one batch size, reused across batches.

    Layout is unit-major, ``(steps, units, batch)``: a gate of one step is then
    a contiguous block, and element-wise NumPy calls on contiguous blocks
    run about three times faster than on column slices of ``(batch, 4h)``.
    """

    def __init__(self, kind: str, steps: int, batch: int, features: int, units: int, gates: int,
                 dtype: npt.DTypeLike) -> None:  # fmt: skip
        g = gates * units
        self.x = np.empty((steps, features, batch), dtype)
        self.y = np.empty(batch, dtype)
        self.z = np.empty((steps, g, batch), dtype)  # pre-activations, then their gradients
        self.a = np.empty((steps, g, batch), dtype)  # LSTM/GRU gate activations
        self.h = np.zeros((steps + 1, units, batch), dtype)  # h[0] stays zero
        self.tmp = np.empty((g, batch), dtype)
        self.dh = np.empty((units, batch), dtype)
        self.mask = np.empty((units, batch), dtype)
        if kind == "gru":
            self.rz = np.empty((steps, g, batch), dtype)  # recurrent pre-activations, then their gradients
            self.t1 = np.empty((units, batch), dtype)
        if kind == "lstm":
            self.c = np.zeros((steps + 1, units, batch), dtype)
            self.ac = np.empty((steps, units, batch), dtype)  # activation(c)
            self.dc = np.empty((units, batch), dtype)
            self.t1 = np.empty((units, batch), dtype)


def head_loss(out: np.ndarray, y: np.ndarray, classification: bool) -> tuple[float, np.ndarray]:
    """Loss of the head's output ``out (outputs, batch)`` and its gradient ``d loss / d out``.

    Regression: mean squared error of ``out[0]``.  Classification: mean
    softmax cross-entropy of the logits against the class indices in ``y``.
    """
    n = out.shape[1]
    if not classification:
        err = out[0] - y
        return float(np.mean(err * err)), ((2.0 / n) * err)[None, :].astype(out.dtype)
    shifted = out - out.max(axis=0, keepdims=True)  # softmax is shift-invariant; exp cannot overflow
    p = np.exp(shifted)
    total = p.sum(axis=0, keepdims=True)
    p /= total
    cls = y.astype(np.int64)
    cols = np.arange(n)
    loss = float(np.mean(np.log(total[0]) - shifted[cls, cols]))
    p[cls, cols] -= 1
    p /= n
    return loss, p


class NumpyModel(ModelBase):
    path = "numpy-bptt"  # NumPy is synchronous and has no device timer: ModelBase's defaults
    """The reference implementation of :class:`seqbench.contract.Model`.

    ``dtype`` overrides ``spec.dtype`` (the tests check gradients in float64).
    Internally the layer weights are held transposed (``(gates*units, in)``)
    to suit the unit-major layout.
    """

    def __init__(self, spec: ModelSpec, weights: Weights, dtype: str | None = None) -> None:
        weights.check(spec)
        self.spec = spec
        self.dtype = np.dtype(dtype or spec.dtype).type
        self.kind = spec.info.name  # ValueError for an unknown kind, before any work
        self.lstm = self.kind == "lstm"
        self.gates = spec.gates
        self.relu = spec.activation == "relu"
        self.blocks = spec.blocks()  # (layer, direction); block k's parameters are params[3k:3k+3]
        # copies, never views: training updates the parameters in place
        self.params = [np.array(a, dtype=self.dtype, order="C") for a in self._to_internal(weights)]
        self.grads = [np.zeros_like(p) for p in self.params]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.step = 0
        self._buffers: dict[tuple[int, int], _Buffers] = {}
        self.x_train = np.empty((spec.steps, spec.features, 0), self.dtype)
        self.y_train = np.empty(0, self.dtype)
        self.lengths_train: np.ndarray | None = None
        self.lengths: np.ndarray | None = None  # the current batch's lengths (None: every sample has all steps)

    # ---------------------------------------------------------- layout

    def _perm(self) -> np.ndarray:
        """Gate order internal <- canonical: the LSTM's three sigmoid gates first, so one call activates them."""
        info = self.spec.info
        order = ("input", "forget", "output", "candidate") if self.lstm else info.gates
        return info.gate_columns(order, self.spec.units)

    def _to_internal(self, w: Weights) -> list[np.ndarray]:
        """Per block: transposed kernels in the internal gate order, the bias as ``(rows, gates*h, 1)``;
        then the head."""
        p = self._perm()
        out = []
        for block in w.blocks():
            bias = np.reshape(block.bias, (self.spec.info.bias_rows, -1))[:, p, None]
            out += [block.kernel[:, p].T, block.recurrent_kernel[:, p].T, bias]
        return [*out, w.dense_kernel, w.dense_bias]

    def _to_canonical(self, arrays: list[np.ndarray], dtype: npt.DTypeLike) -> Weights:
        inverse = np.argsort(self._perm())
        a = [np.asarray(v, dtype=dtype) for v in arrays]
        bias_shape = self.spec.block_shapes(1)["bias"]
        blocks = [LayerWeights(a[i].T[:, inverse].copy(), a[i + 1].T[:, inverse].copy(),
                               a[i + 2][:, inverse, 0].reshape(bias_shape))
                  for i in range(0, len(a) - 2, 3)]  # fmt: skip
        return Weights.of_blocks(blocks, a[-2].copy(), a[-1].copy())

    # ---------------------------------------------------------- math

    def _buf(self, batch: int, k: int = 0) -> _Buffers:
        """Block ``k``'s work arrays for ``batch`` samples."""
        if (k, batch) not in self._buffers:
            s = self.spec
            width = s.block_shapes(self.blocks[k][0])["kernel"][0]
            self._buffers[k, batch] = _Buffers(self.kind, s.steps, batch, width, s.units, self.gates, self.dtype)
        return self._buffers[k, batch]

    def _forward(self, b: _Buffers, k: int = 0) -> np.ndarray:
        """Run block ``k`` over ``b.x``; return the final hidden state ``(units, batch)``."""
        wx, wh, bias = self.params[3 * k], self.params[3 * k + 1], self.params[3 * k + 2]
        steps = b.x.shape[0]
        np.matmul(wx, b.x, out=b.z)  # the input projection of every step at once
        b.z += bias[0]
        h = self.spec.units
        act = _relu if self.relu else np.tanh
        if self.kind == "gru":
            return self._forward_gru(b, act, k)
        for t in range(steps):
            if t:  # h[0] is zero: nothing to add at the first step
                np.matmul(wh, b.h[t], out=b.tmp)
                b.z[t] += b.tmp
            if not self.lstm:
                act(b.z[t], out=b.h[t + 1])
                continue
            a, z = b.a[t], b.z[t]
            _sigmoid(z[: 3 * h], out=a[: 3 * h])
            act(z[3 * h :], out=a[3 * h :])
            np.multiply(a[h : 2 * h], b.c[t], out=b.c[t + 1])  # f * c
            np.multiply(a[:h], a[3 * h :], out=b.t1)  # i * g
            b.c[t + 1] += b.t1
            act(b.c[t + 1], out=b.ac[t])
            np.multiply(a[2 * h : 3 * h], b.ac[t], out=b.h[t + 1])  # o * act(c)
        return b.h[steps]

    def _forward_gru(self, b: _Buffers, act, k: int) -> np.ndarray:  # noqa: ANN001
        """GRU, ``reset_after=True``: the reset gate scales the candidate's recurrent term, bias included."""
        wh, b_rec = self.params[3 * k + 1], self.params[3 * k + 2][1]
        h = self.spec.units
        for t in range(b.x.shape[0]):
            rz, a, z = b.rz[t], b.a[t], b.z[t]
            if t:
                np.matmul(wh, b.h[t], out=rz)
                rz += b_rec
            else:  # h[0] is zero: the recurrent term is its bias alone
                rz[...] = b_rec
            np.add(z[: 2 * h], rz[: 2 * h], out=a[: 2 * h])
            _sigmoid(a[: 2 * h], out=a[: 2 * h])  # update, reset
            np.multiply(a[h : 2 * h], rz[2 * h :], out=b.t1)  # r * (h U_c + b_rec_c)
            b.t1 += z[2 * h :]
            act(b.t1, out=a[2 * h :])  # candidate
            # h_t = u * h_{t-1} + (1 - u) * c = c + u * (h_{t-1} - c)
            np.subtract(b.h[t], a[2 * h :], out=b.h[t + 1])
            b.h[t + 1] *= a[:h]
            b.h[t + 1] += a[2 * h :]
        return b.h[b.x.shape[0]]

    def _act_grad(self, activated: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The activation's derivative, from its output: relu' = [y > 0], tanh' = 1 - y^2."""
        if self.relu:
            return np.greater(activated, 0, out=out)
        np.multiply(activated, activated, out=out)
        return np.subtract(1, out, out=out)

    def _backward(self, b: _Buffers, dh_last: np.ndarray | None, k: int = 0,
                  inject: np.ndarray | None = None) -> None:  # fmt: skip
        """Fill block ``k``'s gradients, ``self.grads[3k:3k+3]``, from the gradient at its final state
        (``dh_last``) and/or at each step's state (``inject (steps, units, batch)``: ``inject[t]`` is added
        to the gradient at ``h[t+1]``)."""
        wh_t = np.ascontiguousarray(self.params[3 * k + 1].T)
        steps = b.x.shape[0]
        h = self.spec.units
        dh, dz = b.dh, b.z  # the forward's pre-activations are overwritten by their gradients
        if dh_last is None:
            dh.fill(0)
        else:
            dh[...] = dh_last
        if self.kind == "gru":
            return self._backward_gru(b, wh_t, k, inject)
        if self.lstm:
            b.dc.fill(0)
        for t in range(steps - 1, -1, -1):
            if inject is not None:
                dh += inject[t]
            if not self.lstm:
                np.multiply(dh, self._act_grad(b.h[t + 1], b.mask), out=dz[t])
            else:
                a, d = b.a[t], dz[t]
                i, f, o, g = a[:h], a[h : 2 * h], a[2 * h : 3 * h], a[3 * h :]
                np.multiply(dh, b.ac[t], out=d[2 * h : 3 * h])  # d o
                np.multiply(dh, o, out=b.t1)
                b.t1 *= self._act_grad(b.ac[t], b.mask)
                b.dc += b.t1
                np.multiply(b.dc, g, out=d[:h])  # d i
                np.multiply(b.dc, b.c[t], out=d[h : 2 * h])  # d f
                np.multiply(b.dc, i, out=d[3 * h :])  # d g
                b.dc *= f
                # through the non-linearities: sigmoid' = s (1 - s)
                s, ds = a[: 3 * h], b.tmp[: 3 * h]
                np.subtract(1, s, out=ds)
                ds *= s
                d[: 3 * h] *= ds
                d[3 * h :] *= self._act_grad(g, b.mask)
            if t:
                np.matmul(wh_t, dz[t], out=dh)
        # weight gradients: one large product each, summed over steps and batch
        self.grads[3 * k][...] = np.tensordot(dz, b.x, axes=([0, 2], [0, 2]))
        # h[0] is zero, so step 0 adds nothing to the recurrent gradient
        self.grads[3 * k + 1][...] = np.tensordot(dz[1:], b.h[1:steps], axes=([0, 2], [0, 2]))
        np.sum(dz, axis=(0, 2), out=self.grads[3 * k + 2][0, :, 0])

    def _backward_gru(self, b: _Buffers, wh_t: np.ndarray, k: int, inject: np.ndarray | None) -> None:
        """The GRU's sweep: ``b.z`` receives the input-side and ``b.rz`` the recurrent-side
        pre-activation gradients; they differ only in the candidate block, where the
        recurrent side is scaled by the reset gate."""
        steps, h = b.x.shape[0], self.spec.units
        dh = b.dh
        for t in range(steps - 1, -1, -1):
            if inject is not None:
                dh += inject[t]
            a, dx, dr = b.a[t], b.z[t], b.rz[t]
            u, r, c = a[:h], a[h : 2 * h], a[2 * h :]
            # candidate: d c_pre = dh * (1 - u) * act'(c); the recurrent side keeps rz_c for d r
            np.subtract(1, u, out=b.t1)
            b.t1 *= dh
            b.t1 *= self._act_grad(c, b.mask)
            np.multiply(b.t1, r, out=b.mask)  # d (h U_c + b_rec_c) = d c_pre * r
            np.multiply(b.t1, dr[2 * h :], out=dx[h : 2 * h])  # d r = d c_pre * rz_c (before overwriting rz)
            dr[2 * h :] = b.mask
            dx[2 * h :] = b.t1
            # update: d u = dh * (h_{t-1} - c)
            np.subtract(b.h[t], c, out=dx[:h])
            dx[:h] *= dh
            # through the sigmoids: s' = s (1 - s)
            s, ds = a[: 2 * h], b.tmp[: 2 * h]
            np.subtract(1, s, out=ds)
            ds *= s
            dx[: 2 * h] *= ds
            dr[: 2 * h] = dx[: 2 * h]
            # to h_{t-1}: directly through u, and through the recurrent products
            dh *= u
            if t:
                np.matmul(wh_t, dr, out=b.t1)
                dh += b.t1
        self.grads[3 * k][...] = np.tensordot(b.z, b.x, axes=([0, 2], [0, 2]))
        self.grads[3 * k + 1][...] = np.tensordot(b.rz[1:], b.h[1:steps], axes=([0, 2], [0, 2]))
        np.sum(b.z, axis=(0, 2), out=self.grads[3 * k + 2][0, :, 0])
        np.sum(b.rz, axis=(0, 2), out=self.grads[3 * k + 2][1, :, 0])

    # ---------------------------------------------------------- layers, directions, lengths

    def _reversal(self, batch: int) -> np.ndarray | None:
        """The per-sample time reversal of the current batch, ``(steps, 1, batch)`` indices: step ``t`` of
        sample ``b`` comes from ``length_b - 1 - t`` while ``t < length_b`` and stays put past it.  None for
        fixed lengths (the plain reversal ``[::-1]``).  It is its own inverse."""
        if self.lengths is None:
            return None
        t = np.arange(self.spec.steps)[:, None]
        return np.where(t < self.lengths[None, :], self.lengths[None, :] - 1 - t, t)[:, None, :]

    @staticmethod
    def _reverse(seq: np.ndarray, rev: np.ndarray | None) -> np.ndarray:
        """``seq (steps, width, batch)`` reversed in time per sample (:meth:`_reversal`)."""
        if rev is None:
            return seq[::-1]
        return np.take_along_axis(seq, np.broadcast_to(rev, seq.shape), axis=0)

    def _final(self, b: _Buffers) -> np.ndarray:
        """A block's output: its state after each sample's last real step, ``(units, batch)``."""
        if self.lengths is None:
            return b.h[b.x.shape[0]]
        return b.h[self.lengths, :, np.arange(b.h.shape[2])].T

    def _forward_all(self, first: _Buffers) -> np.ndarray:
        """Run every block, layer by layer, from ``first.x`` (block 0's input, loaded); return the head's
        input ``(units * directions, batch)``: the last layer's outputs, forward first."""
        if len(self.blocks) == 1 and self.lengths is None:
            return self._forward(first)  # one layer, fixed length: the original fast path
        batch, dirs = first.x.shape[2], self.spec.directions
        rev = self._reversal(batch) if self.spec.bidirectional else None
        seq = first.x  # the current layer's input, in time order
        for layer in range(1, self.spec.layers + 1):
            outputs = []
            for d in range(dirs):
                k = (layer - 1) * dirs + d
                b = self._buf(batch, k)
                if k:
                    b.x[...] = seq if d == 0 else self._reverse(seq, rev)
                self._forward(b, k)
                outputs.append(b.h[1:] if d == 0 else self._reverse(b.h[1:], rev))
            if layer < self.spec.layers:
                seq = np.concatenate(outputs, axis=1)
        return np.concatenate([self._final(self._buf(batch, len(self.blocks) - dirs + d)) for d in range(dirs)])

    def _backward_all(self, first: _Buffers, d_features: np.ndarray) -> None:
        """Every block's gradients from the gradient at the head's input ``(units * directions, batch)``."""
        if len(self.blocks) == 1 and self.lengths is None:
            return self._backward(first, d_features)
        batch, h, dirs, steps = first.x.shape[2], self.spec.units, self.spec.directions, self.spec.steps
        rev = self._reversal(batch) if self.spec.bidirectional else None
        d_seq: np.ndarray | None = None  # the gradient at the current layer's outputs, in time order
        for layer in range(self.spec.layers, 0, -1):
            d_below = np.zeros((steps, self.spec.block_shapes(layer)["kernel"][0], batch), self.dtype)
            for d in range(dirs):
                k = (layer - 1) * dirs + d
                b = self._buf(batch, k)
                mine = slice(d * h, (d + 1) * h)
                if d_seq is not None:  # a layer below the top: its every output feeds the layer above
                    self._backward(b, None, k, d_seq[:, mine] if d == 0 else self._reverse(d_seq[:, mine], rev))
                elif self.lengths is None:
                    self._backward(b, d_features[mine], k)
                else:  # the top layer's output is read at each sample's last real step
                    inject = np.zeros((steps, h, batch), self.dtype)
                    inject[self.lengths - 1, :, np.arange(batch)] = d_features[mine].T
                    self._backward(b, None, k, inject)
                if layer > 1:  # the gradient at this block's input, for the layer below
                    d_in = np.matmul(self.params[3 * k].T, b.z)
                    d_below += d_in if d == 0 else self._reverse(d_in, rev)
            d_seq = d_below

    def _head(self, h_last: np.ndarray) -> np.ndarray:
        """The dense head's output ``(outputs, batch)``."""
        return self.params[-2].T @ h_last + self.params[-1][:, None]

    def _loss_and_grads(self, b: _Buffers) -> float:
        h_last = self._forward_all(b)
        loss, dout = head_loss(self._head(h_last), b.y, self.spec.classification)  # dout (outputs, batch)
        np.matmul(h_last, dout.T, out=self.grads[-2])
        np.sum(dout, axis=1, out=self.grads[-1])
        self._backward_all(b, self.params[-2] @ dout)
        return loss

    def _adam(self) -> None:
        o = self.spec.optimizer
        self.step += 1
        lr_t = o.learning_rate * np.sqrt(1 - o.beta2**self.step) / (1 - o.beta1**self.step)
        for p, g, m, v in zip(self.params, self.grads, self.m, self.v, strict=False):
            m *= o.beta1
            m += (1 - o.beta1) * g
            v *= o.beta2
            v += (1 - o.beta2) * (g * g)
            p -= (lr_t * m) / (np.sqrt(v) + o.epsilon)

    # ---------------------------------------------------------- contract

    def set_train_data(self, x: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> None:
        self.x_train = np.ascontiguousarray(np.asarray(x, self.dtype).transpose(1, 2, 0))
        self.y_train = np.asarray(y, self.dtype)
        self.lengths_train = self._checked(lengths, len(y))

    def _checked(self, lengths: np.ndarray | None, n: int) -> np.ndarray | None:
        if lengths is None:
            return None
        lengths = np.asarray(lengths, np.int64)
        if lengths.shape != (n,) or lengths.min(initial=1) < 1 or lengths.max(initial=1) > self.spec.steps:
            raise ValueError(f"lengths must be {n} integers from 1 to {self.spec.steps}")
        return lengths

    def _load_batch(self, idx: np.ndarray) -> _Buffers:
        b = self._buf(len(idx))
        np.take(self.x_train, idx, axis=2, out=b.x)
        np.take(self.y_train, idx, out=b.y)
        self.lengths = None if self.lengths_train is None else self.lengths_train[idx]
        return b

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            total += self._loss_and_grads(self._load_batch(idx)) * len(idx)
            self._adam()
        return total / len(order)

    def loss_and_gradients(self, x: np.ndarray, y: np.ndarray,
                           lengths: np.ndarray | None = None) -> tuple[float, Weights]:  # fmt: skip
        """Loss on ``(x, y)`` and its gradient in the canonical layout (for tests)."""
        self.set_train_data(x, y, lengths)
        loss = self._loss_and_grads(self._load_batch(np.arange(len(y))))
        return loss, self._to_canonical(self.grads, self.dtype)

    def predict(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        b = self._buf(len(x))
        b.x[...] = np.asarray(x, self.dtype).transpose(1, 2, 0)
        self.lengths = self._checked(lengths, len(x))
        out = self._head(self._forward_all(b)).astype(np.float32)
        return out.T.copy() if self.spec.classification else out[0]

    def get_weights(self) -> Weights:
        return self._to_canonical(self.params, np.float32)

    def trainable_params(self) -> int:
        return sum(p.size for p in self.params)

    def describe(self) -> dict[str, str]:
        return {"dtype": np.dtype(self.dtype).name}
