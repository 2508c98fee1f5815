"""SimpleRNN and LSTM in NumPy with full backpropagation through time.

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
  canonical order (input, forget, candidate, output) is restored on export.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from seqbench.contract import ModelSpec, Weights


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

    def __init__(self, steps: int, batch: int, features: int, units: int, gates: int, dtype: npt.DTypeLike) -> None:
        g = gates * units
        self.x = np.empty((steps, features, batch), dtype)
        self.y = np.empty(batch, dtype)
        self.z = np.empty((steps, g, batch), dtype)  # pre-activations, then their gradients
        self.a = np.empty((steps, g, batch), dtype)  # LSTM gate activations
        self.h = np.zeros((steps + 1, units, batch), dtype)  # h[0] stays zero
        self.tmp = np.empty((g, batch), dtype)
        self.dh = np.empty((units, batch), dtype)
        self.mask = np.empty((units, batch), dtype)
        if gates == 4:
            self.c = np.zeros((steps + 1, units, batch), dtype)
            self.ac = np.empty((steps, units, batch), dtype)  # activation(c)
            self.dc = np.empty((units, batch), dtype)
            self.t1 = np.empty((units, batch), dtype)


class NumpyModel:
    """The reference implementation of :class:`seqbench.contract.Model`.

    ``dtype`` overrides ``spec.dtype`` (the tests check gradients in float64).
    Internally the layer weights are held transposed (``(gates*units, in)``)
    to suit the unit-major layout.
    """

    def __init__(self, spec: ModelSpec, weights: Weights, dtype: str | None = None) -> None:
        weights.check(spec)
        self.spec = spec
        self.dtype = np.dtype(dtype or spec.dtype).type
        self.lstm = spec.kind == "lstm"
        self.gates = spec.gates
        self.relu = spec.activation == "relu"
        # copies, never views: training updates the parameters in place
        self.params = [np.array(a, dtype=self.dtype, order="C") for a in self._to_internal(weights)]
        self.grads = [np.zeros_like(p) for p in self.params]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.step = 0
        self._buffers: dict[int, _Buffers] = {}
        self.x_train = np.empty((spec.steps, spec.features, 0), self.dtype)
        self.y_train = np.empty(0, self.dtype)

    # ---------------------------------------------------------- layout

    def _perm(self) -> np.ndarray:
        """Gate order internal <- canonical (identity for the RNN)."""
        h = self.spec.units
        if not self.lstm:
            return np.arange(h)
        i, f, c, o = (np.arange(k * h, (k + 1) * h) for k in range(4))
        return np.concatenate([i, f, o, c])

    def _to_internal(self, w: Weights) -> list[np.ndarray]:
        p = self._perm()
        return [w.kernel[:, p].T, w.recurrent_kernel[:, p].T, w.bias[p][:, None], w.dense_kernel, w.dense_bias]

    def _to_canonical(self, arrays: list[np.ndarray], dtype: npt.DTypeLike) -> Weights:
        inverse = np.argsort(self._perm())
        wx, wh, b, wd, bd = (np.asarray(a, dtype=dtype) for a in arrays)
        return Weights(wx.T[:, inverse].copy(), wh.T[:, inverse].copy(), b[inverse, 0], wd.copy(), bd.copy())

    # ---------------------------------------------------------- math

    def _buf(self, batch: int) -> _Buffers:
        if batch not in self._buffers:
            s = self.spec
            self._buffers[batch] = _Buffers(s.steps, batch, s.features, s.units, self.gates, self.dtype)
        return self._buffers[batch]

    def _forward(self, b: _Buffers) -> np.ndarray:
        """Run the layer over ``b.x``; return the final hidden state ``(units, batch)``."""
        wx, wh, bias = self.params[0], self.params[1], self.params[2]
        steps = b.x.shape[0]
        np.matmul(wx, b.x, out=b.z)  # the input projection of every step at once
        b.z += bias
        h = self.spec.units
        act = _relu if self.relu else np.tanh
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

    def _act_grad(self, activated: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The activation's derivative, from its output: relu' = [y > 0], tanh' = 1 - y^2."""
        if self.relu:
            return np.greater(activated, 0, out=out)
        np.multiply(activated, activated, out=out)
        return np.subtract(1, out, out=out)

    def _backward(self, b: _Buffers, dh_last: np.ndarray) -> None:
        """Fill ``self.grads[:3]`` from the gradient at the final hidden state."""
        wh_t = np.ascontiguousarray(self.params[1].T)
        steps = b.x.shape[0]
        h = self.spec.units
        dh, dz = b.dh, b.z  # the forward's pre-activations are overwritten by their gradients
        dh[...] = dh_last
        if self.lstm:
            b.dc.fill(0)
        for t in range(steps - 1, -1, -1):
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
        self.grads[0][...] = np.tensordot(dz, b.x, axes=([0, 2], [0, 2]))
        # h[0] is zero, so step 0 adds nothing to the recurrent gradient
        self.grads[1][...] = np.tensordot(dz[1:], b.h[1:steps], axes=([0, 2], [0, 2]))
        np.sum(dz, axis=(0, 2), out=self.grads[2][:, 0])

    def _loss_and_grads(self, b: _Buffers) -> float:
        wd, bd = self.params[3], self.params[4]
        h_last = self._forward(b)
        err = (wd.T @ h_last)[0] + bd[0] - b.y
        loss = float(np.mean(err * err))
        dout = (2.0 / len(err)) * err[None, :].astype(self.dtype)  # (1, batch)
        np.matmul(h_last, dout.T, out=self.grads[3])
        self.grads[4][0] = dout.sum()
        self._backward(b, wd @ dout)
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

    def set_train_data(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x_train = np.ascontiguousarray(np.asarray(x, self.dtype).transpose(1, 2, 0))
        self.y_train = np.asarray(y, self.dtype)

    def _load_batch(self, idx: np.ndarray) -> _Buffers:
        b = self._buf(len(idx))
        np.take(self.x_train, idx, axis=2, out=b.x)
        np.take(self.y_train, idx, out=b.y)
        return b

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            total += self._loss_and_grads(self._load_batch(idx)) * len(idx)
            self._adam()
        return total / len(order)

    def loss_and_gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[float, Weights]:
        """Loss on ``(x, y)`` and its gradient in the canonical layout (for tests)."""
        self.set_train_data(x, y)
        loss = self._loss_and_grads(self._load_batch(np.arange(len(y))))
        return loss, self._to_canonical(self.grads, self.dtype)

    def synchronize(self) -> None:
        pass  # NumPy is synchronous

    def epoch_gpu_seconds(self) -> float | None:
        return None

    def predict(self, x: np.ndarray) -> np.ndarray:
        b = self._buf(len(x))
        b.x[...] = np.asarray(x, self.dtype).transpose(1, 2, 0)
        return ((self.params[3].T @ self._forward(b))[0] + self.params[4][0]).astype(np.float32)

    def get_weights(self) -> Weights:
        return self._to_canonical(self.params, np.float32)

    def trainable_params(self) -> int:
        return sum(p.size for p in self.params)

    def implementation_path(self) -> str:
        return "numpy-bptt"

    def describe(self) -> dict[str, str]:
        return {"dtype": np.dtype(self.dtype).name}
