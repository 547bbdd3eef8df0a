"""PyTorch's own bf16 on the CPU, timed like the reference's `bench`.

The shared reference (`r2unet_torch.py`) times f32 only. This script builds
the same model from it and times PyTorch's bf16 paths, so that r2unet's
`--precision bf16` has a yardstick in its own precision:

- `autocast` (train and infer): `torch.autocast("cpu", dtype=torch.bfloat16)`,
  PyTorch's documented mixed precision (convolutions in bf16 through oneDNN,
  which uses AMX tiles where the CPU has them; weights and Adam in f32);
- `cast` (infer): the model and input converted to bf16 in channels-last
  layout, oneDNN's fastest inference layout, often faster than autocast.

It prints one JSON line with the same fields as the reference's `bench`.

    /tmp/torchref/bin/python scripts/torch_bench_bf16.py --ref ../shared/reference/r2unet_torch.py \
        --model r2unet --per-step-bn --mode infer --how cast
"""

import argparse
import importlib.util
import json
import resource
import time

import torch
import torch.nn.functional as F


def load_reference(path):
    spec = importlib.util.spec_from_file_location("r2unet_torch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(step, warmup, steps):
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return sorted(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ref", required=True, help="path of the reference's r2unet_torch.py")
    p.add_argument("--model", default="r2unet", choices=["unet", "resunet", "runet", "r2unet"])
    p.add_argument("--widths", default="16,32,64,128")
    p.add_argument("--t", type=int, default=2)
    p.add_argument("--per-step-bn", action="store_true")
    p.add_argument("--in-ch", type=int, default=1)
    p.add_argument("--out-ch", type=int, default=1)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--mode", default="train", choices=["train", "infer"])
    p.add_argument("--how", default="autocast", choices=["autocast", "cast"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.how == "cast" and a.mode == "train":
        p.error("--how cast is for inference (training in bf16 weights is not PyTorch's recipe)")

    ref = load_reference(a.ref)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = ref.build(a)
    x = torch.rand(a.batch, a.in_ch, a.size, a.size)
    y = (torch.rand(a.batch, a.out_ch, a.size, a.size) < 0.3).float()
    flops = ref.conv_flops(model, x)

    if a.mode == "train":
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(x)
            loss = F.binary_cross_entropy_with_logits(logits.float(), y)
            loss.backward()
            opt.step()
            loss.item()

        times = timed(step, a.warmup, a.steps)
        work = 3 * flops
    else:
        model.eval()
        if a.how == "cast":
            model = model.to(dtype=torch.bfloat16, memory_format=torch.channels_last)
            xin = x.to(dtype=torch.bfloat16, memory_format=torch.channels_last)

            def step():
                torch.sigmoid(model(xin).float()).mean().item()
        else:
            xin = x

            def step():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    logits = model(xin)
                torch.sigmoid(logits.float()).mean().item()

        with torch.inference_mode():
            times = timed(step, a.warmup, a.steps)
        work = flops

    med = times[len(times) // 2]
    print(json.dumps({
        "impl": f"pytorch-bf16-{a.how}", "torch": torch.__version__, "model": a.model,
        "per_step_bn": a.per_step_bn, "mode": a.mode, "batch": a.batch, "size": a.size,
        "threads": a.threads, "median_ms": round(med * 1000, 2), "min_ms": round(times[0] * 1000, 2),
        "patches_per_s": round(a.batch / med, 2), "gflop_per_s": round(work / med / 1e9, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main()
