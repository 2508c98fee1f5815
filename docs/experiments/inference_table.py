"""The tables of docs/experiments/inference.md: python inference_table.py RUN_DIR.

The first: every row's batch-1 latency and throughput (``Model.predict``).  The second, for a run made with
``--inference full``: each row's other inference paths (``model.predict``, ``torch.compile``...), medians over
seeds, with what the paths recorded about themselves (a compile's graph breaks, a path that failed).
"""

import sys

import pandas as pd

import seqbench

run = seqbench.load_run(sys.argv[1])
table = seqbench.summary(run)
table = table[table["latency_p50_ms"].notna()]
table["activation"] = table["experiment"].str.extract(r"activation=(\w+)", expand=False)
table = table.sort_values(["model", "activation", "latency_p50_ms"])
print("| model | backend:implementation | latency p50 ms (min-max over seeds) | p99 ms | 1st call ms "
      "| samples/s at a large batch | status |")
print("|---|---|---:|---:|---:|---:|---|")
for r in table.to_dict("records"):
    p50 = f"{r['latency_p50_ms']:.3g} ({r['latency_min_ms']:.3g}-{r['latency_max_ms']:.3g})"
    print(f"| {r['model']} {r['activation']} | {r['backend']}:{r['implementation']} | {p50} "
          f"| {r['latency_p99_ms']:.3g} "
          f"| {r['latency_first_ms']:.3g} | {r['throughput_per_s']:,.0f} | {r['status']} |")

cells = run.cells[run.cells["status"] == "ok"]
rows = []
for c in cells.to_dict("records"):
    paths = c.get("inference_paths") or {}
    details = c.get("details") or {}
    names = {k.split("/")[0] for k in paths} | {k.split(":", 1)[1] for k in details if k.startswith("inference_path:")}
    rows.append({"model": c["model"], "activation": c["activation"], "row": f"{c['backend']}:{c['implementation']}",
                 "path": "predict()", "p50": c["latency_p50_s"], "p99": c["latency_p99_s"],
                 "first": c["latency_first_s"], "per_s": c["throughput_per_s"], "note": ""})
    for name in sorted(names):
        notes = [f"{k.removeprefix(name).strip()}: {v}" for k, v in details.items()
                 if k.startswith(name + " ") or k == f"inference_path:{name}"]
        rows.append({"model": c["model"], "activation": c["activation"], "row": f"{c['backend']}:{c['implementation']}",
                     "path": name, "p50": paths.get(f"{name}/latency_p50_s"), "p99": paths.get(f"{name}/latency_p99_s"),
                     "first": paths.get(f"{name}/latency_first_s"), "per_s": paths.get(f"{name}/throughput_per_s"),
                     "note": "; ".join(notes)})
paths = pd.DataFrame(rows)
if paths["path"].ne("predict()").any():
    print()
    print("| model | backend:implementation | path | latency p50 ms | p99 ms | 1st call ms | samples/s | notes |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    keys = ["model", "activation", "row", "path"]
    medians = paths.groupby(keys, sort=False).agg(
        {"p50": "median", "p99": "median", "first": "median", "per_s": "median", "note": "first"})
    for (model, activation, row, path), r in medians.sort_values(["model", "activation", "p50"]).iterrows():
        def ms(v):
            return "failed" if pd.isna(v) else f"{v * 1e3:.3g}"
        per_s = "" if pd.isna(r["per_s"]) else f"{r['per_s']:,.0f}"
        print(f"| {model} {activation} | {row} | {path} | {ms(r['p50'])} | {ms(r['p99'])} | {ms(r['first'])} "
              f"| {per_s} | {r['note']} |")
