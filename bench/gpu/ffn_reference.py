#!/usr/bin/env python3
"""Plain PyTorch versions of the structured FFN layers (issue 9, item 3): the peer of
isoflop-ffn-bench, timed the same way in the same call.

Each layer is written the way a PyTorch user would write it from the paper (papers.md 3.1): lowrank as
two nn.Linear-style products, blockdense as a batched matmul over the blocks then a dense product,
blockshuffle as batched matmul, the stride-B shuffle as a reshape/transpose, and a second batched
matmul. FFN = c_fc, exact GELU, c_proj, bf16, no bias; forward + backward on x (tokens, d); median of
CUDA-event timings. Prints JSON lines like isoflop-ffn-bench's, with impl "torch".
"""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F


def lowrank(in_f, out_f, rank):
    V = torch.randn(rank, in_f) / in_f ** 0.5
    U = torch.randn(out_f, rank) / rank ** 0.5
    return [V, U], lambda x, V, U: F.linear(F.linear(x, V), U)


def blockdense(in_f, out_f, rank, blocks):
    w1 = torch.randn(blocks, rank // blocks, in_f // blocks) / (in_f // blocks) ** 0.5
    U = torch.randn(out_f, rank) / rank ** 0.5

    def fn(x, w1, U):
        n = x.shape[0]
        h = torch.bmm(x.view(n, blocks, -1).transpose(0, 1), w1.transpose(1, 2))  # (B, n, R/B)
        return F.linear(h.transpose(0, 1).reshape(n, rank), U)
    return [w1, U], fn


def blockshuffle(in_f, out_f, blocks):
    p, q, s = in_f // blocks, min(in_f, out_f) // blocks, out_f // blocks
    w1 = torch.randn(blocks, q, p) / p ** 0.5
    w2 = torch.randn(blocks, s, q) / q ** 0.5

    def fn(x, w1, w2):
        n = x.shape[0]
        h = torch.bmm(x.view(n, blocks, p).transpose(0, 1), w1.transpose(1, 2))   # (B, n, q)
        h = h.transpose(0, 1).reshape(n, q, blocks).permute(2, 0, 1)              # shuffle: (B, n, q)
        y = torch.bmm(h, w2.transpose(1, 2))                                       # (B, n, s)
        return y.permute(1, 2, 0).reshape(n, out_f)                                # out[j B + c]
    return [w1, w2], fn


def dense(in_f, out_f):
    W = torch.randn(out_f, in_f) / in_f ** 0.5
    return [W], lambda x, W: F.linear(x, W)


def layers(name, d):
    f = 4 * d
    make = {
        "dense": lambda i, o: dense(i, o),
        "lowrank-63": lambda i, o: lowrank(i, o, d // 2),
        "blockdense-63": lambda i, o: blockdense(i, o, 2 * round(d / 3), 2),
        "blockshuffle-63": lambda i, o: blockshuffle(i, o, 2),
        "lowrank-32": lambda i, o: lowrank(i, o, d // 4),
        "blockdense-32": lambda i, o: blockdense(i, o, 2 * round(d / 6), 2),
        "blockshuffle-32": lambda i, o: blockshuffle(i, o, 4),
    }[name]
    return make(d, f), make(f, d)


def median_ms(fn, reps):
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=30720)
    ap.add_argument("--widths", default="2048,3072,5120")
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    dev = torch.device("cuda")
    for d in map(int, args.widths.split(",")):
        dense_ms = dense_macs = None
        for name in ["dense", "lowrank-63", "blockdense-63", "blockshuffle-63", "lowrank-32",
                     "blockdense-32", "blockshuffle-32"]:
            torch.manual_seed(0)
            (p1, f1), (p2, f2) = layers(name, d)
            p1 = [t.to(dev, torch.bfloat16).requires_grad_() for t in p1]
            p2 = [t.to(dev, torch.bfloat16).requires_grad_() for t in p2]
            x = torch.randn(args.tokens, d, device=dev, dtype=torch.bfloat16, requires_grad=True)
            g = torch.randn(args.tokens, d, device=dev, dtype=torch.bfloat16)

            def step():
                f2(F.gelu(f1(x, *p1)), *p2).backward(g)
                for t in p1 + p2 + [x]:
                    t.grad = None
            ms = median_ms(step, args.reps)
            macs = sum(t.numel() for t in p1 + p2)
            if name == "dense":
                dense_ms, dense_macs = ms, macs
            ratio = dense_macs / macs
            print(json.dumps({"bench": "ffn", "impl": "torch", "width": d, "variant": name,
                              "tokens": args.tokens, "ms": ms, "params": macs,
                              "flop_ratio": ratio, "speedup": dense_ms / ms,
                              "of_flop_ratio": dense_ms / ms / ratio,
                              "tflops": 6 * macs * args.tokens / ms / 1e9}), flush=True)


if __name__ == "__main__":
    main()
