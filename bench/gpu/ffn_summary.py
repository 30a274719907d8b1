#!/usr/bin/env python3
"""ffn.jsonl (isoflop-ffn-bench and ffn_reference.py, one call) -> markdown: per width and variant, the
worker's and plain PyTorch's forward+backward time, speed-up over dense, the FLOP ratio, the speed-up
as a fraction of it, the targets of issue 9 item 3, and the pre-merge thresholds."""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip().startswith("{")]
ffn = {(r["impl"], r["width"], r["variant"]): r for r in rows if r["bench"] == "ffn"}
print("| width | variant | FLOP ratio | worker ms | worker speed-up | of FLOP ratio | torch ms | "
      "torch speed-up | targets |")
print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
for (impl, width, variant), w in ffn.items():
    if impl != "worker":
        continue
    t = ffn.get(("torch", width, variant), {})
    if variant == "dense":
        ok = ""
    else:
        beats_torch = "speedup" not in t or w["speedup"] >= t["speedup"]
        eighty = width < 3072 or w["of_flop_ratio"] >= 0.8
        ok = ("ok" if beats_torch and eighty else "MISSED") + \
             (" (>= torch" + ("" if width < 3072 else ", >= 80%") + ")")
    print(f"| {width} | {variant} | {w['flop_ratio']:.2f}x | {w['ms']:.3f} | {w['speedup']:.2f}x | "
          f"{100 * w['of_flop_ratio']:.0f}% | {t.get('ms', float('nan')):.3f} | "
          f"{t.get('speedup', float('nan')):.2f}x | {ok} |")
pre = [r for r in rows if r["bench"] == "premerge"]
if pre:
    print()
    print("| width | variant | merged dense form faster up to (tokens) |")
    print("|---:|---|---:|")
    for r in pre:
        print(f"| {r['width']} | {r['variant']} | {r['merged_wins_up_to']} |")
