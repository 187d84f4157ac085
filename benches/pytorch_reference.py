"""The training step of benches/train_step.rs in PyTorch, on the CPU, for a
side-by-side images/s figure: the ConvNet encoder, a 128-512-512-512
projector, VICReg (25/25/1) on two views, backward and an AdamW step, batch
256 of 32 x 32 RGB images. The views are random tensors here (darkmatter's
step also augments on the device, about 1% of its time).

    python3 benches/pytorch_reference.py            # all cores
    OMP_NUM_THREADS=1 python3 benches/pytorch_reference.py
"""
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def convnet(channels):
    def block(cin, cout, stride):
        return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(channels, 32, 1), *block(32, 64, 2), *block(64, 128, 2), *block(128, 128, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


def projector(dims):
    layers = []
    for a, b in zip(dims[:-2], dims[1:-1]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
    layers.append(nn.Linear(dims[-2], dims[-1], bias=False))
    return nn.Sequential(*layers)


def vicreg(za, zb):
    n, d = za.shape
    inv = F.mse_loss(za, zb)
    za, zb = za - za.mean(0), zb - zb.mean(0)
    std_a, std_b = torch.sqrt(za.var(0) + 1e-4), torch.sqrt(zb.var(0) + 1e-4)
    var = (F.relu(1 - std_a).mean() + F.relu(1 - std_b).mean()) / 2
    ca, cb = za.T @ za / (n - 1), zb.T @ zb / (n - 1)
    off = lambda c: c.pow(2).sum() - c.diagonal().pow(2).sum()
    cov = off(ca) / d + off(cb) / d
    return 25 * inv + 25 * var + cov


def main():
    torch.manual_seed(0)
    enc, proj = convnet(3), projector([128, 512, 512, 512])
    params = list(enc.parameters()) + list(proj.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
    xa, xb = torch.randn(256, 3, 32, 32), torch.randn(256, 3, 32, 32)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = vicreg(proj(enc(xa)), proj(enc(xb)))
        loss.backward()
        opt.step()
        return loss.item()

    step()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    median = times[len(times) // 2]
    print(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads: "
          f"{median * 1e3:.0f} ms per step, {256 / median:.0f} images/s")


if __name__ == "__main__":
    main()
