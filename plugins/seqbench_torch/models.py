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

Stacked, bidirectional and variable-length models (``ModelSpec.blocks``):
``FusedNet`` passes ``num_layers`` and ``bidirectional`` to the fused layer
(block ``(layer, backward)`` is torch's ``*_l{layer-1}_reverse``) and hands it
variable-length batches as ``pack_padded_sequence``: the layer never sees
the padding, and its ``h_n`` is each sample's state after its last real step
(the backward direction's after the first).  ``LoopNet`` steps every block
over the whole padded batch and masks: a sample's state stays as it was at a
step past its length.

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
from seqbench.contract import LayerWeights, ModelSpec, OptimizerSpec, Weights

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


def _suffix(layer: int, direction: str) -> str:
    """torch's parameter suffix of a block: ``l0``, ``l0_reverse``, ``l1`` ..."""
    return f"l{layer - 1}{'_reverse' if direction == 'backward' else ''}"


class FusedNet(nn.Module):
    """``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` (``num_layers``, ``bidirectional``) plus
    ``nn.Linear(units * directions, outputs)``."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        if spec.kind not in FUSED_LAYERS:
            raise ValueError(f"torch has no fused layer for model {spec.kind!r}")
        self.spec = spec
        self.rnn: nn.RNNBase
        shape = {"num_layers": spec.layers, "bidirectional": spec.bidirectional}
        if spec.kind == "rnn":
            self.rnn = nn.RNN(spec.features, spec.units, nonlinearity=spec.activation, **shape)
        else:
            if spec.activation != "tanh":
                raise ValueError(f"{FUSED_LAYERS[spec.kind].__name__} computes tanh only")
            self.rnn = FUSED_LAYERS[spec.kind](spec.features, spec.units, **shape)
        self.two_biases = spec.info.bias_rows == 2
        self.perm = _gate_perm(spec)
        self.inverse = np.argsort(self.perm)
        self.suffixes = [_suffix(layer, d) for layer, d in spec.blocks()]
        self.head = nn.Linear(spec.units * spec.directions, spec.outputs)
        if not self.two_biases:
            for s in self.suffixes:
                getattr(self.rnn, f"bias_hh_{s}").requires_grad_(False)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``x (steps, batch, features)`` (``lengths`` on the CPU, int64, for variable-length data) ->
        ``(batch,)`` or logits ``(batch, outputs)``."""
        if lengths is None:
            _, state = self.rnn(x)
        else:  # unsorted: torch sorts the batch for the kernel and returns h_n in the batch's own order
            _, state = self.rnn(nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False))
        h_n = state[0] if isinstance(state, tuple) else state  # nn.LSTM returns (h_n, c_n)
        # h_n is (layers * directions, batch, units); the last layer's directions, forward first, feed the head
        last = h_n[-self.spec.directions :]
        out = self.head(torch.cat(list(last), dim=1))
        return out if self.spec.classification else out.squeeze(1)

    @torch.no_grad()
    def load(self, w: Weights) -> None:
        p = self.perm
        for s, block in zip(self.suffixes, w.blocks(), strict=True):
            getattr(self.rnn, f"weight_ih_{s}").copy_(_tensor(block.kernel[:, p]).T)
            getattr(self.rnn, f"weight_hh_{s}").copy_(_tensor(block.recurrent_kernel[:, p]).T)
            if self.two_biases:
                getattr(self.rnn, f"bias_ih_{s}").copy_(_tensor(block.bias[0, p]))
                getattr(self.rnn, f"bias_hh_{s}").copy_(_tensor(block.bias[1, p]))
            else:
                getattr(self.rnn, f"bias_ih_{s}").copy_(_tensor(block.bias[p]))
                getattr(self.rnn, f"bias_hh_{s}").zero_()
        self.head.weight.copy_(_tensor(w.dense_kernel).T)
        self.head.bias.copy_(_tensor(w.dense_bias))

    def path(self, device: torch.device) -> str:
        """Name the kernel that the layer dispatches to, by torch's own conditions."""
        layer = type(self.rnn).__name__
        packed = "/packed" if self.spec.variable_length else ""
        if device.type == "cuda":
            cudnn = torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled
            return f"nn.{layer}{packed}/{'cudnn' if cudnn else 'cuda'}"
        # On CPU only the LSTM has a oneDNN kernel, and only for a padded tensor: nn.RNN, and every layer on a
        # PackedSequence, runs ATen's cell loop in C++.
        onednn = torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
        return f"nn.{layer}{packed}/{'onednn' if layer == 'LSTM' and onednn and not packed else 'aten'}"

    def canonical(self) -> Weights:
        inv = self.inverse
        blocks = []
        for s in self.suffixes:
            bias = _array(getattr(self.rnn, f"bias_ih_{s}"))[inv]
            if self.two_biases:
                bias = np.stack([bias, _array(getattr(self.rnn, f"bias_hh_{s}"))[inv]])
            blocks.append(LayerWeights(_array(getattr(self.rnn, f"weight_ih_{s}")).T[:, inv].copy(),
                                       _array(getattr(self.rnn, f"weight_hh_{s}")).T[:, inv].copy(), bias))  # fmt: skip
        return Weights.of_blocks(blocks, _array(self.head.weight).T.copy(), _array(self.head.bias))


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
        # Further blocks (Weights.stack), three parameters each: kernel, recurrent kernel, bias.
        self.stack = nn.ParameterList([torch.zeros(v) for k, v in shapes.items() if k.startswith("stack[")])
        self.names = list(shapes)  # the canonical name of each parameter, in registration order
        self.general = spec.stacked or spec.variable_length
        self.spec = spec
        self.units = spec.units
        self.act = ACTIVATIONS[spec.activation]
        # One recurrence per kind of seqbench.contract.KINDS; an unknown kind fails here.
        recurrences = {"rnn": self._rnn, "lstm": self._lstm, "gru": self._gru}
        if spec.kind not in recurrences:
            raise ValueError(f"the torch loop has no recurrence for model {spec.kind!r}")
        self.recurrence = recurrences[spec.kind]
        self.two_biases = spec.info.bias_rows == 2

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``x (steps, batch, features)`` -> ``(batch,)`` or logits ``(batch, outputs)``."""
        if self.general:
            h = self._blocks(x, lengths)
        else:  # one layer, one direction, fixed length: the original loop
            steps, batch, features = x.shape
            # The input projection of every step is one product, hoisted out of the loop.
            b_in = self.bias[0] if self.two_biases else self.bias
            xw = torch.addmm(b_in, x.reshape(steps * batch, features), self.kernel)
            h = self.recurrence(xw.view(steps, batch, -1))
        out = torch.addmm(self.dense_bias, h, self.dense_kernel)
        return out if self.spec.classification else out.squeeze(1)

    def _block(self, k: int) -> tuple[Tensor, Tensor, Tensor]:
        if k == 0:
            return self.kernel, self.recurrent_kernel, self.bias
        return self.stack[3 * k - 3], self.stack[3 * k - 2], self.stack[3 * k - 1]

    def _blocks(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        """Every layer and direction, masked: a step past a sample's length keeps its state.  Returns the last
        layer's final states, forward first ``(batch, units * directions)``."""
        steps, batch, _ = x.shape
        keep = None if lengths is None else (torch.arange(steps)[:, None] < lengths[None, :]).unsqueeze(2).to(x.device)
        seq, k = x, 0
        for _ in range(self.spec.layers):
            outputs, finals = [], []
            for direction in range(self.spec.directions):
                kernel, recurrent, bias = self._block(k)
                k += 1
                b_in, b_rec = (bias[0], bias[1]) if self.two_biases else (bias, None)
                xw = torch.addmm(b_in, seq.reshape(steps * batch, -1), kernel).view(steps, batch, -1)
                h = c = x.new_zeros(batch, self.units)
                out: list[Tensor] = [h] * steps
                for t in range(steps) if direction == 0 else range(steps - 1, -1, -1):
                    h_new, c_new = self._step(xw[t], h, c, recurrent, b_rec)
                    h, c = (h_new, c_new) if keep is None else (torch.where(keep[t], h_new, h),
                                                                torch.where(keep[t], c_new, c))  # fmt: skip
                    out[t] = h
                outputs.append(torch.stack(out))
                finals.append(h)
            seq = torch.cat(outputs, dim=2)
        return torch.cat(finals, dim=1)

    def _step(self, xw: Tensor, h: Tensor, c: Tensor, recurrent: Tensor, b_rec: Tensor | None) -> tuple[Tensor, Tensor]:
        """One step of any kind from state ``(h, c)`` (``c`` is the LSTM's cell, passed through by the others)."""
        kind = self.spec.kind
        if kind == "gru":
            h2 = 2 * self.units
            hw = torch.addmm(b_rec, h, recurrent) if b_rec is not None else h @ recurrent
            u, r = torch.sigmoid(xw[:, :h2] + hw[:, :h2]).chunk(2, 1)
            cand = self.act(torch.addcmul(xw[:, h2:], r, hw[:, h2:]))
            return torch.lerp(cand, h, u), c
        z = torch.addmm(xw, h, recurrent)
        if kind == "rnn":
            return self.act(z), c
        i, f, g, o = self._gates(z)
        c = torch.addcmul(f * c, i, g)
        return o * self.act(c), c

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
        return "python-loop/masked" if self.spec.variable_length else "python-loop"

    @torch.no_grad()
    def load(self, w: Weights) -> None:
        arrays = w.arrays()
        for name, p in zip(self.names, self.parameters(), strict=True):
            p.copy_(_tensor(arrays[name]))

    def canonical(self) -> Weights:
        return Weights.from_arrays({name: _array(p) for name, p in zip(self.names, self.parameters(), strict=True)})


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
        self._len: Tensor | None = None  # each training sample's length (variable-length data), on the CPU
        self._batch_lengths: dict[tuple[int, int], Tensor] = {}
        # CUDA events bracket each epoch on the stream: device time, without host overhead.
        self._events = [torch.cuda.Event(enable_timing=True) for _ in range(2)] if self._cuda else []
        self._timed = False
        self._facts: dict[str, str] = {}  # what the compiled predictors found (graph breaks), for describe()

    def _to_device(self, x: np.ndarray) -> Tensor:
        """``x (n, steps, features)`` as a time-major float32 tensor on the device."""
        time_major = np.ascontiguousarray(np.asarray(x, dtype=np.float32).transpose(1, 0, 2))
        return torch.from_numpy(time_major).to(self.device)

    @staticmethod
    def _host_lengths(lengths: np.ndarray | None) -> Tensor | None:
        # pack_padded_sequence takes the lengths on the CPU, as int64, wherever the data are
        return None if lengths is None else torch.from_numpy(np.asarray(lengths, np.int64))

    def set_train_data(self, x: np.ndarray, y: np.ndarray, lengths: np.ndarray | None = None) -> None:
        self._len = self._host_lengths(lengths)
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
        host = torch.from_numpy(np.asarray(order, dtype=np.int64))
        idx = host.to(self.device)
        if self._cuda:
            self._events[0].record()
        losses = []
        for batch, rows in zip(idx.split(batch_size), host.split(batch_size), strict=True):
            lengths = None if self._len is None else self._len.index_select(0, rows)
            loss = self._loss(self.net(self._x.index_select(1, batch), lengths), self._y.index_select(0, batch))
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

    def predict(self, x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        self.net.eval()
        try:
            with torch.no_grad():
                out = self.net(self._to_device(x), self._host_lengths(lengths))
        finally:
            self.net.train()
        return _array(out)

    def predictors(self) -> dict[str, Callable[..., np.ndarray]]:
        """``torch.compile`` of the network in eval mode (Inductor, the defaults), next to :meth:`predict`'s
        eager module.  For the fused layers also with Dynamo's experimental ``allow_rnn``: by default Dynamo
        does not trace ``nn.RNN``/``nn.LSTM``/``nn.GRU``, breaks the graph there and runs the layer eagerly,
        which only the graph-break count in :meth:`describe` shows."""
        paths = {"torch.compile": self._compiled("torch.compile", allow_rnn=False)}
        if isinstance(self.net, FusedNet):
            paths["torch.compile(allow_rnn)"] = self._compiled("torch.compile(allow_rnn)", allow_rnn=True)
        return paths

    def _compiled(self, name: str, allow_rnn: bool) -> Callable[..., np.ndarray]:
        import torch._dynamo  # noqa: PLC0415 - only --inference full and the kit compile; not in a timed call
        from torch._dynamo.utils import counters

        compiled: Callable[..., Tensor] | None = None

        def predict(x: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
            nonlocal compiled
            torch._dynamo.config.allow_rnn = allow_rnn  # read whenever a new shape is traced
            self.net.eval()  # a guard of the compiled graph: predict() sets train mode again after its call
            with torch.no_grad():
                if compiled is not None:
                    return _array(compiled(self._to_device(x), self._host_lengths(lengths)))
                torch._dynamo.reset()  # the counters below are global: count this compile alone
                counters.clear()
                torch._inductor.config.compile_threads = 1  # no pool of compile workers to outlive the cell
                compiled = torch.compile(self.net, dynamic=False)
                out = _array(compiled(self._to_device(x), self._host_lengths(lengths)))
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
