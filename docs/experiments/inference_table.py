"""The batch-1 latency and throughput table of docs/experiments/inference.md: python inference_table.py RUN_DIR."""

import sys

import seqbench

table = seqbench.summary(sys.argv[1])
table = table[table["latency_p50_ms"].notna()].sort_values(["model", "latency_p50_ms"])
print("| model | backend:implementation | latency p50 ms (min-max over seeds) | p99 ms | 1st call ms "
      "| samples/s at a large batch | status |")
print("|---|---|---:|---:|---:|---:|---|")
for r in table.to_dict("records"):
    p50 = f"{r['latency_p50_ms']:.3g} ({r['latency_min_ms']:.3g}-{r['latency_max_ms']:.3g})"
    print(f"| {r['model']} | {r['backend']}:{r['implementation']} | {p50} | {r['latency_p99_ms']:.3g} "
          f"| {r['latency_first_ms']:.3g} | {r['throughput_per_s']:,.0f} | {r['status']} |")
