"""The configuration of a run: one place for every ``seqbench run`` setting and its default.

The CLI takes its defaults from here, and run.json records it under
``config``.  Standard library only, so the CLI can read it at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The settings of ``--inference``; seqbench.harness.INFERENCE says what each measures (a test keeps them equal).
INFERENCE_SETTINGS = ("off", "quick", "full")


@dataclass(frozen=True)
class RunConfig:
    backends: tuple[str, ...] = ("all",)
    models: tuple[str, ...] = ("rnn", "lstm")
    task: str = "arithmetic"
    # units, layers, batch_size, activation and each task parameter take one value or a tuple: a grid
    # (seqbench.grid)
    task_params: dict[str, int | tuple[int, ...]] = field(default_factory=dict)
    epochs: int = 10
    batch_size: int | tuple[int, ...] = 32  # a tuple is a grid (seqbench.grid)
    units: int | tuple[int, ...] = 10
    layers: int | tuple[int, ...] = 1  # stacked recurrent layers, a grid like units (0.4)
    bidirectional: bool = False  # every layer runs both directions, outputs concatenated (0.4)
    activation: str | tuple[str, ...] = "relu"
    seeds: int = 3  # repeats: each in its own process
    device: str = "cpu"
    threads: int | None = None  # None: the policy of seqbench.threads
    timeout: float = 600.0  # per cell, from its start; the worker's start-up has its own allowance
    startup_timeout: float = 300.0
    retries: int = 2  # extra measurements of a repeat that other processes disturbed
    results_dir: str = "results"
    shard: tuple[int, int] | None = None  # (I, N): run only the I-th of N deterministic parts (1-based)
    calibrate: bool = True  # measure the calibration workload before the cells
    # A/B in one run: environment name -> the executable that starts its Python (--env NAME=EXECUTABLE), in
    # the order given; empty: every worker runs this Python.
    envs: dict[str, str] = field(default_factory=dict)
    adaptive: bool = False  # --seeds auto: add repeats to undecided rows, up to max_seeds
    max_seeds: int = 10
    threshold: float = 0.10  # the change that --seeds auto must be able to decide
    retry_budget: float = 0.5  # re-measurements: at most this share of the planned processes
    inference: str = "quick"  # the inference phase after training: off, quick or full (seqbench.harness.INFERENCE)
