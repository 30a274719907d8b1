#!/usr/bin/env python3
"""speed.jsonl (bench/gpu/speed.sh) -> a markdown table: per config and peer, tokens/s, MFU, peak
memory, and the worker's ratio to each PyTorch peer measured in the same call."""
import json
import sys

records = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
by_config = {}
for r in records:
    by_config.setdefault(r["config"], {})[r["peer"]] = r

print("| config | peer | tokens/s | MFU | peak memory | worker-graph / this |")
print("|---|---|---:|---:|---:|---:|")
for config, peers in by_config.items():
    best = peers.get("worker-graph", {}).get("tokens_per_s")
    order = ["worker-graph", "worker-eager", "torch-compile", "torch-eager"]
    for peer in order + sorted(p for p in peers if p not in order):
        r = peers.get(peer)
        if r is None:
            continue
        if "tokens_per_s" not in r:
            print(f"| {config} | {peer} | failed (exit {r.get('exit')}) | | | |")
            continue
        ratio = f"{best / r['tokens_per_s']:.3f}x" if best else ""
        print(f"| {config} | {peer} | {r['tokens_per_s']:,.0f} | {100 * r['mfu']:.1f}% | "
              f"{r.get('peak_memory_bytes', 0) / 2**30:.2f} GiB | {ratio} |")
