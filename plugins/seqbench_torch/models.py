"""PyTorch models behind :class:`seqbench.contract.Model`; imported on first use.

Two networks compute the same function from the same canonical weights:

* :class:`FusedNet` wraps ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``: one framework
  call per batch (oneDNN for the LSTM on CPU, cuDNN on GPU).  PyTorch keeps
  two bias vectors.  For the RNN and LSTM the canonical bias lives in
  ``bias_ih`` and ``bias_hh`` stays zero and frozen, so the trainable
  parameters are exactly the canonical ones; the GRU's two canonical bias
  rows (input, recurrent) are exactly ``bias_ih`` and ``bias_hh``, both
  trained.  ``nn.GRU`` orders its gates reset, update, new where the
  canonical order is update, reset, candidate: :data:`TORCH_GATES` and
  :func:`_gate_perm` map one onto the other.
* :class:`LoopNet` is our own cell in a Python loop over time, holding the
  weights in the canonical (Keras) layout; any activation, so it serves the
  seed's relu LSTM, which ``nn.LSTM`` cannot compute.

:class:`TorchModel` owns the data on the device, the epoch's batches, the
loss and a Keras-exact Adam.  Data are held time-major, ``(steps, n,
features)``: a gathered batch is then already in the layout both networks
consume, and each step's slice is contiguous.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqbench import SeqbenchError
from seqbench.contract import ModelSpec, OptimizerSpec, Weights

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": torch.relu, "tanh": torch.tanh}


def torch_device(device: str) -> torch.device:
    """The torch device for a seqbench device name; loud if the GPU is missing."""
    if device == "cpu":
        return torch.device("cpu")
    if device == "gpu":
        if not torch.cuda.is_available():
            raise SeqbenchError(
                f"device 'gpu' needs CUDA, but torch {torch.__version__} "
                f"(built for CUDA {torch.version.cuda or 'none'}) sees no CUDA device"
            )
        return torch.device("cuda")
    raise SeqbenchError(f"unknown device {device!r} for the torch backend; valid: cpu, gpu")


# Gate order of torch's fused layers, in the canonical gate names of seqbench.contract.KINDS.
TORCH_GATES = {
    "rnn": ("candidate",),
    "lstm": ("input", "forget", "candidate", "output"),
    "gru": ("reset", "update", "candidate"),
}
FUSED_LAYERS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _gate_perm(spec: ModelSpec) -> np.ndarray:
    """Canonical column indices in torch's gate order: ``torch_cols = canonical[..., perm]``."""
    return spec.info.gate_columns(TORCH_GATES[spec.kind], spec.units)


def _array(t: Tensor) -> np.ndarray:
    """A float32 NumPy copy that does not alias the live parameter."""
    return t.detach().cpu().numpy().astype(np.float32)  # astype copies


def _tensor(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float32))


class FusedNet(nn.Module):
    """``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` plus ``nn.Linear(units, outputs)``."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        if spec.kind not in FUSED_LAYERS:
            raise ValueError(f"torch has no fused layer for model {spec.kind!r}")
        self.spec = spec
        self.rnn: nn.RNNBase
        if spec.kind == "rnn":
            self.rnn = nn.RNN(spec.features, spec.units, nonlinearity=spec.activation)
        else:
            if spec.activation != "tanh":
                raise ValueError(f"{FUSED_LAYERS[spec.kind].__name__} computes tanh only")
            self.rnn = FUSED_LAYERS[spec.kind](spec.features, spec.units)
        self.two_biases = spec.info.bias_rows == 2
        self.perm = _gate_perm(spec)
        self.inverse = np.argsort(self.perm)
        self.head = nn.Linear(spec.units, spec.outputs)
        if not self.two_biases:
            self.rnn.bias_hh_l0.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        """``x (steps, batch, features)`` -> ``(batch,)`` or logits ``(batch, outputs)``."""
        _, state = self.rnn(x)
        h_n = state[0] if isinstance(state, tuple) else state  # nn.LSTM returns (h_n, c_n)
        out = self.head(h_n[0])
        return out if self.spec.classification else out.squeeze(1)

    @torch.no_grad()
    def load(self, w: Weights) -> None:
        p = self.perm
        self.rnn.weight_ih_l0.copy_(_tensor(w.kernel[:, p]).T)
        self.rnn.weight_hh_l0.copy_(_tensor(w.recurrent_kernel[:, p]).T)
        if self.two_biases:
            self.rnn.bias_ih_l0.copy_(_tensor(w.bias[0, p]))
            self.rnn.bias_hh_l0.copy_(_tensor(w.bias[1, p]))
        else:
            self.rnn.bias_ih_l0.copy_(_tensor(w.bias[p]))
            self.rnn.bias_hh_l0.zero_()
        self.head.weight.copy_(_tensor(w.dense_kernel).T)
        self.head.bias.copy_(_tensor(w.dense_bias))

    def path(self, device: torch.device) -> str:
        """Name the kernel that the layer dispatches to, by torch's own conditions."""
        layer = type(self.rnn).__name__
        if device.type == "cuda":
            cudnn = torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled
            return f"nn.{layer}/{'cudnn' if cudnn else 'cuda'}"
        # On CPU only the LSTM has a oneDNN kernel; nn.RNN runs ATen's cell loop in C++.
        onednn = torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
        return f"nn.{layer}/{'onednn' if layer == 'LSTM' and onednn else 'aten'}"

    def canonical(self) -> Weights:
        inv = self.inverse
        bias = _array(self.rnn.bias_ih_l0)[inv]
        if self.two_biases:
            bias = np.stack([bias, _array(self.rnn.bias_hh_l0)[inv]])
        return Weights(
            kernel=_array(self.rnn.weight_ih_l0).T[:, inv].copy(),
            recurrent_kernel=_array(self.rnn.weight_hh_l0).T[:, inv].copy(),
            bias=bias,
            dense_kernel=_array(self.head.weight).T.copy(),
            dense_bias=_array(self.head.bias),
        )


class LoopNet(nn.Module):
    """Our own RNN/LSTM/GRU cell, stepped in Python; parameters in the canonical layout."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        shapes = spec.weight_shapes()
        self.kernel = nn.Parameter(torch.zeros(shapes["kernel"]))
        self.recurrent_kernel = nn.Parameter(torch.zeros(shapes["recurrent_kernel"]))
        self.bias = nn.Parameter(torch.zeros(shapes["bias"]))
        self.dense_kernel = nn.Parameter(torch.zeros(shapes["dense_kernel"]))
        self.dense_bias = nn.Parameter(torch.zeros(shapes["dense_bias"]))
        self.spec = spec
        self.units = spec.units
        self.act = ACTIVATIONS[spec.activation]
        # One recurrence per kind of seqbench.contract.KINDS; an unknown kind fails here.
        recurrences = {"rnn": self._rnn, "lstm": self._lstm, "gru": self._gru}
        if spec.kind not in recurrences:
            raise ValueError(f"the torch loop has no recurrence for model {spec.kind!r}")
        self.recurrence = recurrences[spec.kind]
        self.two_biases = spec.info.bias_rows == 2

    def forward(self, x: Tensor) -> Tensor:
        """``x (steps, batch, features)`` -> ``(batch,)`` or logits ``(batch, outputs)``."""
        steps, batch, features = x.shape
        # The input projection of every step is one product, hoisted out of the loop.
        b_in = self.bias[0] if self.two_biases else self.bias
        xw = torch.addmm(b_in, x.reshape(steps * batch, features), self.kernel)
        h = self.recurrence(xw.view(steps, batch, -1))
        out = torch.addmm(self.dense_bias, h, self.dense_kernel)
        return out if self.spec.classification else out.squeeze(1)

    # The state is zero before step 0, so step 0 skips the recurrent product.
    def _rnn(self, xw: Tensor) -> Tensor:
        h = self.act(xw[0])
        for t in range(1, len(xw)):
            h = self.act(torch.addmm(xw[t], h, self.recurrent_kernel))
        return h

    def _lstm(self, xw: Tensor) -> Tensor:
        i, _, g, o = self._gates(xw[0])
        c = i * g
        h = o * self.act(c)
        for t in range(1, len(xw)):
            i, f, g, o = self._gates(torch.addmm(xw[t], h, self.recurrent_kernel))
            c = torch.addcmul(f * c, i, g)
            h = o * self.act(c)
        return h

    def _gru(self, xw: Tensor) -> Tensor:
        """``reset_after=True``: the reset gate scales the recurrent term of the candidate, its bias included."""
        h2 = 2 * self.units
        b_rec = self.bias[1]
        h = None
        for t in range(len(xw)):
            # The state is zero before step 0: its recurrent term is the bias alone.
            hw = b_rec.expand(xw.shape[1], -1) if h is None else torch.addmm(b_rec, h, self.recurrent_kernel)
            u, r = torch.sigmoid(xw[t, :, :h2] + hw[:, :h2]).chunk(2, 1)
            c = self.act(torch.addcmul(xw[t, :, h2:], r, hw[:, h2:]))
            h = c - u * c if h is None else torch.lerp(c, h, u)  # u * h + (1 - u) * c
        return h

    def _gates(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Input, forget, candidate, output."""
        # One sigmoid over all four gates is fewer calls than three slices; the
        # candidate's share of it is wasted but cheap next to the products.
        i, f, _, o = torch.sigmoid(z).chunk(4, 1)
        return i, f, self.act(z[:, 2 * self.units : 3 * self.units]), o

    def path(self, device: torch.device) -> str:
        return "python-loop"

    @torch.no_grad()
    def load(self, w: Weights) -> None:
        for name, p in self.named_parameters():  # named exactly as the Weights fields
            p.copy_(_tensor(getattr(w, name)))

    def canonical(self) -> Weights:
        return Weights(**{name: _array(p) for name, p in self.named_parameters()})


Net = FusedNet | LoopNet


class KerasAdam:
    """Adam exactly as :class:`seqbench.contract.OptimizerSpec` states it (Keras's epsilon).

    ``torch.optim.Adam`` adds epsilon to ``sqrt(v_hat)`` rather than to
    ``sqrt(v)``, so it differs slightly.  Each line here is one ``_foreach``
    call over all tensors: on CUDA one multi-tensor kernel, on CPU a C++ loop.
    ``params`` must not require grad (pass detached views), so no
    ``no_grad`` context is needed per step.
    """

    def __init__(self, params: list[Tensor], grads: list[Tensor], spec: OptimizerSpec) -> None:
        self.params, self.grads, self.spec = params, grads, spec
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def step(self) -> None:
        s = self.spec
        self.t += 1
        # The step count lives on the host, so the bias correction costs no device sync.
        lr_t = s.learning_rate * math.sqrt(1 - s.beta2**self.t) / (1 - s.beta1**self.t)
        torch._foreach_lerp_(self.m, self.grads, 1 - s.beta1)  # m = b1 m + (1 - b1) g
        torch._foreach_mul_(self.v, s.beta2)
        torch._foreach_addcmul_(self.v, self.grads, self.grads, value=1 - s.beta2)
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_add_(denom, s.epsilon)
        torch._foreach_addcdiv_(self.params, self.m, denom, value=-lr_t)


def _one_buffer(params: list[nn.Parameter]) -> tuple[Tensor, Tensor]:
    """Re-home ``params`` and their gradients as views of two flat buffers.

    Autograd accumulates into an existing ``.grad`` in place, so the views
    keep receiving gradients and the optimiser updates one tensor per call.
    """
    total = sum(p.numel() for p in params)
    data = torch.empty(total, dtype=params[0].dtype, device=params[0].device)
    grad = torch.zeros_like(data)
    offset = 0
    for p in params:
        n = p.numel()
        data[offset : offset + n].copy_(p.detach().reshape(-1))
        p.data = data[offset : offset + n].view_as(p)
        p.grad = grad[offset : offset + n].view_as(p)
        offset += n
    return data, grad


class TorchModel:
    """A built torch model: see :class:`seqbench.contract.Model` for the contract."""

    def __init__(self, net: Net, spec: ModelSpec, weights: Weights, device: str) -> None:
        weights.check(spec)
        self.spec = spec
        # Both are mean reductions, as the contract's loss is the batch mean.
        self._loss = F.cross_entropy if spec.classification else F.mse_loss
        self.device = torch_device(device)
        self._cuda = self.device.type == "cuda"
        self.path = net.path(self.device)
        net.load(weights)
        self.net = net.to(self.device)  # on CUDA, nn.RNN/nn.LSTM re-pack their weights for cuDNN here
        trainable = [p for p in self.net.parameters() if p.requires_grad]
        if self._cuda:
            # On CUDA a _foreach op is one kernel whatever the count, and the weights
            # must stay where cuDNN's flatten_parameters() put them.
            params, grads = [p.detach() for p in trainable], [torch.zeros_like(p) for p in trainable]
            for p, g in zip(trainable, grads, strict=True):
                p.grad = g  # autograd accumulates into it in place
        else:
            # On CPU a _foreach op dispatches once per tensor: one flat tensor is cheapest.
            data, grad = _one_buffer(trainable)
            params, grads = [data], [grad]
        self._grads = grads
        self._adam = KerasAdam(params, grads, spec.optimizer)
        self._x = torch.empty(spec.steps, 0, spec.features, device=self.device)
        self._y = torch.empty(0, device=self.device)
        self._batch_lengths: dict[tuple[int, int], Tensor] = {}
        # CUDA events bracket each epoch on the stream: device time, without host overhead.
        self._events = [torch.cuda.Event(enable_timing=True) for _ in range(2)] if self._cuda else []
        self._timed = False
        self._facts: dict[str, str] = {}  # what the compiled predictors found (graph breaks), for describe()

    def _to_device(self, x: np.ndarray) -> Tensor:
        """``x (n, steps, features)`` as a time-major float32 tensor on the device."""
        time_major = np.ascontiguousarray(np.asarray(x, dtype=np.float32).transpose(1, 0, 2))
        return torch.from_numpy(time_major).to(self.device)

    def set_train_data(self, x: np.ndarray, y: np.ndarray) -> None:
        self._x = self._to_device(x)
        # cross_entropy takes class indices as integers
        self._y = _tensor(y).to(self.device, torch.int64 if self.spec.classification else torch.float32)

    def _lengths(self, n: int, batch_size: int) -> Tensor:
        key = (n, batch_size)
        if key not in self._batch_lengths:
            sizes = [min(batch_size, n - i) for i in range(0, n, batch_size)]
            self._batch_lengths[key] = torch.tensor(sizes, dtype=torch.float32, device=self.device)
        return self._batch_lengths[key]

    def train_epoch(self, order: np.ndarray, batch_size: int) -> float:
        idx = torch.from_numpy(np.asarray(order, dtype=np.int64)).to(self.device)
        if self._cuda:
            self._events[0].record()
        losses = []
        for batch in idx.split(batch_size):
            loss = self._loss(self.net(self._x.index_select(1, batch)), self._y.index_select(0, batch))
            torch._foreach_zero_(self._grads)
            loss.backward()
            self._adam.step()
            losses.append(loss.detach())
        # Losses stay on the device until here: one sync per epoch, not per batch.
        total = torch.stack(losses) @ self._lengths(len(order), batch_size)
        if self._cuda:
            self._events[1].record()
            self._timed = True
        return total.item() / len(order)

    def synchronize(self) -> None:
        if self._cuda:
            torch.cuda.synchronize(self.device)

    def epoch_gpu_seconds(self) -> float | None:
        if not self._timed:
            return None
        self._events[1].synchronize()
        return self._events[0].elapsed_time(self._events[1]) / 1000.0

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.net.eval()
        try:
            with torch.no_grad():
                out = self.net(self._to_device(x))
        finally:
            self.net.train()
        return _array(out)

    def predictors(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """``torch.compile`` of the network in eval mode (Inductor, the defaults), next to :meth:`predict`'s
        eager module.  For the fused layers also with Dynamo's experimental ``allow_rnn``: by default Dynamo
        does not trace ``nn.RNN``/``nn.LSTM``/``nn.GRU``, breaks the graph there and runs the layer eagerly,
        which only the graph-break count in :meth:`describe` shows."""
        paths = {"torch.compile": self._compiled("torch.compile", allow_rnn=False)}
        if isinstance(self.net, FusedNet):
            paths["torch.compile(allow_rnn)"] = self._compiled("torch.compile(allow_rnn)", allow_rnn=True)
        return paths

    def _compiled(self, name: str, allow_rnn: bool) -> Callable[[np.ndarray], np.ndarray]:
        compiled: Callable[[Tensor], Tensor] | None = None

        def predict(x: np.ndarray) -> np.ndarray:
            nonlocal compiled
            import torch._dynamo  # noqa: PLC0415 - only --inference full compiles
            from torch._dynamo.utils import counters

            torch._dynamo.config.allow_rnn = allow_rnn  # read whenever a new shape is traced
            self.net.eval()  # a guard of the compiled graph: predict() sets train mode again after its call
            with torch.no_grad():
                if compiled is not None:
                    return _array(compiled(self._to_device(x)))
                torch._dynamo.reset()  # the counters below are global: count this compile alone
                counters.clear()
                torch._inductor.config.compile_threads = 1  # no pool of compile workers to outlive the cell
                compiled = torch.compile(self.net, dynamic=False)
                out = _array(compiled(self._to_device(x)))
            graphs = counters["stats"]["unique_graphs"]
            breaks = {**counters["graph_break"], **counters["unimplemented"]}
            self._facts[f"{name} graphs"] = str(graphs)
            self._facts[f"{name} graph breaks"] = str(sum(counters["graph_break"].values()))
            if breaks:
                self._facts[f"{name} break"] = str(next(iter(breaks))).strip().splitlines()[0][:200]
            if not graphs:
                self._facts[f"{name} break"] = "ran eagerly, nothing compiled: " + self._facts.get(f"{name} break", "")
            return out

        return predict

    def get_weights(self) -> Weights:
        return self.net.canonical()

    def trainable_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters() if p.requires_grad)

    def implementation_path(self) -> str:
        return self.path

    def describe(self) -> dict[str, str]:
        facts = {
            "torch": torch.__version__,
            "threads": str(torch.get_num_threads()),
            "interop_threads": str(torch.get_num_interop_threads()),
            "tf32_matmul": str(torch.backends.cuda.matmul.allow_tf32),
            "tf32_cudnn": str(torch.backends.cudnn.allow_tf32),
        }
        if self._cuda:
            facts["device"] = torch.cuda.get_device_name(self.device)
            facts["cuda"] = str(torch.version.cuda)
            facts["cudnn"] = str(torch.backends.cudnn.version())
        else:
            facts["device"] = f"cpu ({torch.backends.cpu.get_cpu_capability()})"
            facts["onednn"] = str(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)
        return {**facts, **self._facts}


NETS: dict[str, type[FusedNet] | type[LoopNet]] = {"fused": FusedNet, "loop": LoopNet}


def build_model(implementation: str, spec: ModelSpec, weights: Weights, device: str) -> TorchModel:
    """Build ``implementation`` (a key of :data:`NETS`) of ``spec`` on ``device`` holding ``weights``."""
    if implementation not in NETS:
        raise SeqbenchError(f"unknown torch implementation {implementation!r}; valid: {', '.join(NETS)}")
    return TorchModel(NETS[implementation](spec), spec, weights, device)
