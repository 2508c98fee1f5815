"""Table and figure of a long-memory run: test MSE against sequence length, per model kind.

    python docs/experiments/long_memory_table.py RUN_DIR [--figure long-memory.png]

Reads a run of the ``adding`` task over a grid of ``steps`` (see
long-memory.md), prints a markdown table (median and range of the seeds' test
MSE beside the trivial baseline) and draws the figure (log-x, one line per
model kind, the baseline dashed).
"""

from __future__ import annotations

import argparse

import pandas as pd

import seqbench


def table(run: seqbench.Run) -> pd.DataFrame:
    cells = run.cells[run.cells["status"].isin(["ok", "diverged"])].copy()
    cells["steps"] = [int(p["steps"]) for p in cells["task_params"]]
    cells["mse"] = pd.to_numeric(cells["mse"])
    cells["baseline"] = pd.to_numeric(cells["baseline"])
    grouped = cells.groupby(["steps", "model"])
    out = grouped["mse"].agg(["median", "min", "max", "count"]).join(grouped["baseline"].median())
    return out.reset_index()


def markdown(t: pd.DataFrame) -> str:
    kinds = sorted(t["model"].unique())
    lines = ["| steps | baseline | " + " | ".join(kinds) + " |", "|---|---|" + "---|" * len(kinds)]
    for steps, rows in t.groupby("steps"):
        by = rows.set_index("model")
        cells = [f"{by.loc[k, 'median']:.4f} ({by.loc[k, 'min']:.4f}-{by.loc[k, 'max']:.4f})" for k in kinds]
        lines.append(f"| {steps} | {rows['baseline'].median():.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(t: pd.DataFrame, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, rows in t.groupby("model"):
        ax.plot(rows["steps"], rows["median"], marker="o", label=kind)
        ax.fill_between(rows["steps"], rows["min"], rows["max"], alpha=0.2)
    base = t.groupby("steps")["baseline"].median()
    ax.plot(base.index, base.values, "k--", label="trivial (predict the mean)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("sequence length (steps)")
    ax.set_ylabel("test MSE (median, range over seeds)")
    ax.set_title("Adding problem: who remembers across long sequences")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--figure", default=None)
    args = parser.parse_args()
    t = table(seqbench.load_run(args.run))
    print(markdown(t))
    if args.figure:
        figure(t, args.figure)


if __name__ == "__main__":
    main()
