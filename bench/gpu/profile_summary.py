#!/usr/bin/env python3
"""Where a training step's GPU time goes: the worker's kernel profile next to its PyTorch peer's.

    bench/gpu/profile_summary.py WORKER.json [PEER.json] [--top N]

Both files are kernel profiles of one optimizer step (isoflop-worker --profile-step, written as
kernel_profile.json; gpt_reference.py --profile). Prints markdown: GPU time by kind of kernel for
both and the difference, then each side's longest kernels. The kinds are read from kernel names
(cuBLAS's nvjet/sm90 GEMMs, flash or cuDNN attention, Triton kernels named after what they fuse).
"""
import argparse
import json
import re

# First match wins: a Triton kernel fusing a LayerNorm with an add counts as LayerNorm.
KINDS = [
    ("attention", r"flash|fmha|attention|cudnn|sdpa"),
    ("GEMM", r"gemm|nvjet|xmma|cutlass|cublas|splitK|sm90_"),
    ("LayerNorm", r"layer_?norm|LayerNorm"),
    ("cross-entropy", r"cross_?entropy|CrossEntropy|log_?softmax|nll"),
    ("GELU", r"gelu|Gelu"),
    ("AdamW", r"adam|Adam"),
    ("norm/clip", r"norm|foreach|multi_tensor"),
    ("copy/cast", r"[Mm]emcpy|[Mm]emset|copy|Copy|cast|to_copy|_to_"),
    ("other Triton", r"^triton"),
    ("elementwise", r"elementwise|vectorized|unrolled"),
    ("reduction", r"reduce|Reduce|sum"),
]


def kind(name):
    for label, pattern in KINDS:
        if re.search(pattern, name):
            return label
    return "other"


def by_kind(profile):
    sums = {}
    for a in profile["activities"]:
        k = kind(a["name"])
        count, us = sums.get(k, (0, 0.0))
        sums[k] = (count + a["count"], us + a["us"])
    return sums


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("worker")
    ap.add_argument("peer", nargs="?", help="without it, the worker's profile alone")
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    worker = json.load(open(args.worker))
    # Alone: an empty peer, so that the columns stay the same.
    peer = json.load(open(args.peer)) if args.peer else {"gpu_us": 0.0, "activities": []}
    w, p = by_kind(worker), by_kind(peer)
    print("| kind | worker ms | kernels | peer ms | kernels | worker - peer ms |")
    print("|---|---:|---:|---:|---:|---:|")
    labels = [label for label, _ in KINDS] + ["other"]
    for label in labels:
        if label not in w and label not in p:
            continue
        wc, wus = w.get(label, (0, 0.0))
        pc, pus = p.get(label, (0, 0.0))
        print(f"| {label} | {wus / 1e3:.2f} | {wc} | {pus / 1e3:.2f} | {pc} | "
              f"{(wus - pus) / 1e3:+.2f} |")
    wt, pt = worker["gpu_us"], peer["gpu_us"]
    print(f"| **all** | **{wt / 1e3:.2f}** | {sum(c for c, _ in w.values())} | **{pt / 1e3:.2f}** | "
          f"{sum(c for c, _ in p.values())} | **{(wt - pt) / 1e3:+.2f}** |")
    for title, profile in (("worker", worker), ("peer", peer))[:2 if args.peer else 1]:
        print(f"\nLongest kernels, {title}:\n")
        print("| ms | count | kind | kernel |")
        print("|---:|---:|---|---|")
        for a in profile["activities"][:args.top]:
            name = a["name"] if len(a["name"]) <= 90 else a["name"][:87] + "..."
            print(f"| {a['us'] / 1e3:.2f} | {a['count']} | {kind(a['name'])} | `{name}` |")


if __name__ == "__main__":
    main()
