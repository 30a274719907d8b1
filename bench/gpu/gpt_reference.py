#!/usr/bin/env python3
"""The PyTorch peer of isoflop-worker's training step, for the throughput benchmark of issue 9.

Reads the same resolved run config (run.json, `isoflop plan --write-configs`) the worker trains, builds
the same GPT (nanoGPT's model.py layout: tied embeddings, learned positions, pre-norm blocks, GELU MLP of
4d), and trains it with the same step: bf16 autocast over float32 parameters, TF32 for the float32
matmuls, scaled dot product attention with is_causal, gradient accumulation over
batch_tokens / (micro_batch * seq_len) micro-batches, global-norm clipping, fused AdamW with weight decay
on matrices only. `--mode compile` wraps the model in torch.compile (default mode, nanoGPT's setting);
`--mode eager` does not. Tokens are windows of the run's own train shard, read once before timing (four
step batches, cycled), so the peer pays nothing for data; `--random-tokens` draws random ids instead.

Prints one JSON line: tokens/s (the median of per-step rates after warm-up, timed with CUDA events),
MFU with the accountant's training FLOPs per token (run.json's accounting.train_flops, the figure the
worker's MFU uses) over 989 TFLOP/s, and the peak memory the caching allocator handed out.
"""
import argparse
import glob
import json
import math
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PEAK_FLOPS = 989e12  # H100/H200 SXM dense bf16, as worker/runtime/device.cpp


class Block(nn.Module):
    def __init__(self, d, n_head, d_ff, bias, gelu):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(d, bias=bias)
        self.c_attn = nn.Linear(d, 3 * d, bias=bias)
        self.attn_proj = nn.Linear(d, d, bias=bias)
        self.ln_2 = nn.LayerNorm(d, bias=bias)
        self.c_fc = nn.Linear(d, d_ff, bias=bias)
        self.mlp_proj = nn.Linear(d_ff, d, bias=bias)
        self.gelu = gelu

    def forward(self, x):
        B, T, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)             # (B, T, d) each
        q, k, v = (t.view(B, T, self.n_head, d // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)      # (B, nh, T, hs)
        x = x + self.attn_proj(y.transpose(1, 2).reshape(B, T, d))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate=self.gelu))


class GPT(nn.Module):
    def __init__(self, m):
        super().__init__()
        d = m["d_model"]
        d_ff = m["d_ff"] if m.get("d_ff", 0) > 0 else 4 * d
        gelu = "tanh" if m["activation"] == "gelu_tanh" else "none"
        self.wte = nn.Embedding(m["vocab_size"], d)
        self.wpe = nn.Embedding(m["seq_len"], d)
        self.blocks = nn.ModuleList(
            Block(d, m["n_head"], d_ff, m["bias"], gelu) for _ in range(m["n_layer"]))
        self.ln_f = nn.LayerNorm(d, bias=m["bias"])
        for p in self.parameters():
            nn.init.normal_(p, std=0.02) if p.dim() >= 2 else None

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe.weight[: idx.size(1)]
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)                 # tied lm_head: (B, T, V)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def token_batches(run, random_tokens, micro_steps, B, T, dev, count=4):
    """`count` step batches (micro_steps, B, T + 1) on the GPU: windows of T + 1 tokens at random
    window starts of the run's first train shard (the worker's shard format, common/data/
    token_shard.h: a 256-int32 header, then uint16 ids), or random ids. Real tokens give the peer
    activations like the worker's, whose timings can depend on them (a GEMM's power draw, and so
    the clock it runs at, varies with its operands' bits)."""
    m = run["model"]
    shards = sorted(glob.glob(run["data"]["train"]))
    if random_tokens or not shards:
        return [torch.randint(0, m["vocab_size"], (micro_steps, B, T + 1), device=dev)
                for _ in range(count)]
    header = np.fromfile(shards[0], dtype="<i4", count=256)
    if len(header) < 256 or header[0] != 20240520:
        raise SystemExit(f"{shards[0]}: not a token shard (bad header; expected magic 20240520)")
    tokens = np.memmap(shards[0], dtype=np.uint16, mode="r", offset=256 * 4)
    if len(tokens) != header[2]:
        raise SystemExit(f"{shards[0]}: header says {header[2]} tokens but the file holds "
                         f"{len(tokens)}")
    windows = (len(tokens) - 1) // T
    if windows < 1:
        raise SystemExit(f"{shards[0]}: {len(tokens)} tokens, fewer than one window of {T + 1}")
    rng = np.random.default_rng(run["seed"])
    starts = rng.choice(windows, size=count * micro_steps * B, replace=windows < count * micro_steps * B)
    rows = np.stack([np.asarray(tokens[s * T:s * T + T + 1], dtype=np.int64) for s in starts])
    if rows.max() >= m["vocab_size"]:
        raise SystemExit(f"{shards[0]}: token id {rows.max()} outside the vocabulary")
    return list(torch.from_numpy(rows).to(dev).view(count, micro_steps, B, T + 1).unbind(0))


def write_kernel_profile(path, step):
    """GPU activities of one call of step(), summed by name (worker/runtime/kernel_profile.h)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    sums = {}
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA:
            continue
        count, us = sums.get(e.name, (0, 0.0))
        sums[e.name] = (count + 1, us + e.time_range.elapsed_us())
    activities = sorted(({"name": n, "count": c, "us": us} for n, (c, us) in sums.items()),
                        key=lambda a: -a["us"])
    with open(path, "w") as f:
        json.dump({"gpu_us": sum(a["us"] for a in activities), "activities": activities}, f,
                  indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="run.json of the worker's run")
    ap.add_argument("--mode", choices=["compile", "eager"], default="compile")
    ap.add_argument("--steps", type=int, default=40, help="timed optimizer steps")
    ap.add_argument("--warmup", type=int, default=8, help="untimed steps first (compilation)")
    ap.add_argument("--random-tokens", action="store_true",
                    help="random ids drawn on the GPU instead of windows of the run's train shards")
    ap.add_argument("--profile", metavar="PATH",
                    help="after the timed steps, write the GPU activities of one more step to PATH "
                         "(the format of the worker's kernel_profile.json)")
    args = ap.parse_args()
    run = json.load(open(args.config))
    m, t = run["model"], run["train"]
    if m["arch"] != "gpt" or m["positions"] != "learned" or not m["tied_embeddings"] \
            or m["ffn"]["type"] != "dense" or m["activation"] not in ("gelu", "gelu_tanh"):
        raise SystemExit(f"{args.config}: the reference is the plain GPT (learned positions, tied "
                         "embeddings, dense GELU FFN)")
    B, T = t["micro_batch"], m["seq_len"]
    micro_steps = t["batch_tokens"] // (B * T)
    assert micro_steps * B * T == t["batch_tokens"], "batch_tokens must be a multiple of B * T"

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(run["seed"])
    dev = torch.device("cuda")
    model = GPT(m).to(dev)
    o = t["optimizer"]
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": o["weight_decay"]},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"], fused=True)
    step_model = torch.compile(model) if args.mode == "compile" else model

    batches = token_batches(run, args.random_tokens, micro_steps, B, T, dev)

    def train_step(i):
        data = batches[i % len(batches)]
        for micro in range(micro_steps):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = step_model(data[micro, :, :T], data[micro, :, 1:])
            (loss / micro_steps).backward()
        if t["grad_clip"] > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"], foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    t0 = time.time()
    for i in range(args.warmup):
        train_step(i)
    torch.cuda.synchronize()
    warmup_s = time.time() - t0
    torch.cuda.reset_peak_memory_stats()
    events = [torch.cuda.Event(enable_timing=True) for _ in range(args.steps + 1)]
    events[0].record()
    for i in range(args.steps):
        loss = train_step(i)
        events[i + 1].record()
    torch.cuda.synchronize()
    step_ms = [events[i].elapsed_time(events[i + 1]) for i in range(args.steps)]
    if args.profile:
        write_kernel_profile(args.profile, lambda: train_step(args.steps))
    ms = statistics.median(step_ms)
    tokens_per_s = t["batch_tokens"] / (ms / 1e3)
    flops_per_token = run["accounting"]["train_flops"]
    print(json.dumps({
        "config": run["name"], "mode": args.mode, "micro_batch": B, "seq_len": T,
        "batch_tokens": t["batch_tokens"], "step_ms": ms, "tokens_per_s": tokens_per_s,
        "mfu": tokens_per_s * flops_per_token / PEAK_FLOPS,
        "peak_memory_bytes": torch.cuda.max_memory_allocated(),
        "warmup_s": warmup_s, "loss": loss.item(), "finite": math.isfinite(loss.item()),
        "torch": torch.__version__, "device": torch.cuda.get_device_name()}))


if __name__ == "__main__":
    main()
