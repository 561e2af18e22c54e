"""One SegResNet forward pass (MONAI Label's radiology network) run eagerly, compiled, or frozen TorchScript.

    .venv/bin/python bench/segresnet_forward.py {eager,compile,jit} [--size 88] [--repeats 2]

The network is the reference's (26 classes, init_filters 32, blocks_down 1/2/2/4), channels-last like
our serving network, on one ``size``^3 window (88^3: what our server runs on the demo CT). Prints the first
call (including compilation), the warm calls, the process's peak RSS and the largest difference from the
eager logits: whether ``torch.compile`` or TorchScript would buy the latency the halving target needs.
Run each mode in its own process so the peak memory is its own.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from monai.networks.nets import SegResNet


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["eager", "compile", "jit"])
    p.add_argument("--size", type=int, default=88)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    torch.manual_seed(0)
    net = SegResNet(spatial_dims=3, in_channels=1, out_channels=26, init_filters=32, blocks_down=(1, 2, 2, 4),
                    blocks_up=(1, 1, 1), dropout_prob=0.2).eval().to(memory_format=torch.channels_last_3d)
    x = torch.randn(1, 1, *(args.size,) * 3).contiguous(memory_format=torch.channels_last_3d)
    base = peak_mb()
    with torch.inference_mode():
        if args.mode == "compile":
            run = torch.compile(net, dynamic=False)
        elif args.mode == "jit":
            run = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, x)))
        else:
            run = net
        t = time.perf_counter()
        run(x)
        print(f"{args.mode}: first call {time.perf_counter() - t:.2f} s, peak {peak_mb():.0f} MB (base {base:.0f})")
        warm = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            y = run(x)
            warm.append(time.perf_counter() - t)
        print(f"{args.mode}: warm {', '.join(f'{w:.2f}' for w in warm)} s, peak {peak_mb():.0f} MB, "
              f"max |logit - eager| {(y - net(x)).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
