"""VICReg on Fashion-MNIST in PyTorch on the CPU, mirroring `darkmatter train
--data fashion-mnist`: the ConvNet encoder, a 128-512-512-512 projector,
VICReg 25/25/1 (or `method=barlow`: Barlow Twins, lambda 0.0051;
`method=simclr`: InfoNCE, tau 0.2; `method=byol`: a 128-512-128 projector
and predictor, an EMA target with momentum `ema` rising to 1;
`method=simsiam`: a 128-512-512-512 projector with a batch-normalised
output, a 512-128-512 predictor, stop-gradient), AdamW (betas 0.9, 0.99) with a
0.3-epoch linear warm-up and a cosine decay, batch 256, the `light`
augmentation (crop 0.3-1 of the area at sub-pixel positions, flip,
brightness then contrast 0.8, each clamped to [0, 1], Gaussian noise 0.05
at p 0.5),
and after each epoch the kNN accuracy (k = 20, votes weighted by
exp(cos / 0.07)) of the encoder's representation, 60 000 train images as
the memory and 10 000 test queries.
It needs only torch (no torchvision, no numpy), and reads Debian's
dataset-fashion-mnist.

    python3 benches/pytorch_fashion_mnist.py                       # the defaults
    python3 benches/pytorch_fashion_mnist.py jitter=0.4 lr=0.001 epochs=5
    python3 benches/pytorch_fashion_mnist.py jitter_order=random   # torchvision's order
    python3 benches/pytorch_fashion_mnist.py crop=torchvision      # whole-pixel crop boxes
    python3 benches/pytorch_fashion_mnist.py method=barlow lr=0.001 weight_decay=1.5e-6
    python3 benches/pytorch_fashion_mnist.py method=simclr lr=0.001 weight_decay=1e-6
    python3 benches/pytorch_fashion_mnist.py method=byol lr=0.001 weight_decay=1.5e-6 ema=0.99
    python3 benches/pytorch_fashion_mnist.py method=simsiam lr=0.001 weight_decay=1e-4
    python3 benches/pytorch_fashion_mnist.py --baselines           # raw pixels, random init
    python3 benches/pytorch_fashion_mnist.py --checkpoint runs/x/checkpoint.safetensors

`--checkpoint` loads the encoder of a `darkmatter train` checkpoint into this
file's ConvNet and prints its kNN accuracy, which should match the
`knn_top1` darkmatter logged for that epoch.

Every `key=value` overrides a field of CONFIG; one JSON line per epoch.
"""
import copy
import gzip
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn.functional as F

# The model and loss of the speed reference next to this file.
from pytorch_reference import convnet, projector, vicreg

DATA = os.environ.get("FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
MEAN, STD = 0.2860, 0.3530
CONFIG = dict(method="vicreg", projector="512-512-512", predictor="512-128", ema=0.99, lr=2e-3, weight_decay=1e-4, beta2=0.99, warmup=0.3, epochs=1, batch=256,
              seed=0, crop_min=0.3, flip=0.5, rotation=0.0, jitter=0.8, jitter_p=1.0, noise_p=0.5,
              noise_std=0.05,
              jitter_order="fixed", jitter_clamp="each",
              noise_clamp=1, crop="continuous")


def barlow(za, zb, lam=0.0051, eps=1e-5):
    """Barlow Twins: the cross-correlation of the batch-normalised
    embeddings (biased variance, no affine) pulled towards the identity."""
    n = za.shape[0]
    za = (za - za.mean(0)) / torch.sqrt(za.var(0, unbiased=False) + eps)
    zb = (zb - zb.mean(0)) / torch.sqrt(zb.var(0, unbiased=False) + eps)
    c = za.T @ zb / n
    on = (1 - c.diagonal()).pow(2).sum()
    return on + lam * (c.pow(2).sum() - c.diagonal().pow(2).sum())


def simclr(za, zb, tau=0.2):
    """InfoNCE over the 2N embeddings: each anchor's positive is its other
    view, every other embedding a negative."""
    n = za.shape[0]
    u = F.normalize(torch.cat([za, zb]), dim=1)
    s = u @ u.T / tau
    s.fill_diagonal_(float("-inf"))
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(s, positive)


LOSSES = dict(vicreg=vicreg, barlow=barlow, simclr=simclr)


def widths(text):
    return [int(w) for w in text.split("-")]


def cosine(p, z):
    return F.cosine_similarity(p, z, dim=1).mean()


class Siamese(torch.nn.Module):
    """BYOL and SimSiam: a predictor after the projector, and either an EMA
    target (BYOL) or a stop-gradient on the other branch (SimSiam)."""

    def __init__(self, c, encoder, head):
        super().__init__()
        self.method, self.encoder, self.head = c["method"], encoder, head
        z = widths(c["projector"])[-1]
        self.predictor = projector([z] + widths(c["predictor"]))
        if self.method == "simsiam":
            self.head = torch.nn.Sequential(head, torch.nn.BatchNorm1d(z, affine=False))
        self.target = copy.deepcopy(torch.nn.Sequential(encoder, head)) if self.method == "byol" else None
        if self.target is not None:
            self.target.requires_grad_(False)

    def trained(self):
        return list(self.encoder.parameters()) + list(self.head.parameters()) + list(
            self.predictor.parameters())

    def loss(self, x1, x2):
        z1, z2 = self.head(self.encoder(x1)), self.head(self.encoder(x2))
        p1, p2 = self.predictor(z1), self.predictor(z2)
        if self.method == "simsiam":
            return -(cosine(p1, z2.detach()) + cosine(p2, z1.detach())) / 2
        with torch.no_grad():
            t1, t2 = self.target(x1), self.target(x2)
        return (2 - 2 * cosine(p1, t2)) + (2 - 2 * cosine(p2, t1))

    @torch.no_grad()
    def after_update(self, tau_base, step, total):
        if self.target is None:
            return
        tau = 1 - (1 - tau_base) * (math.cos(math.pi * step / total) + 1) / 2
        online = torch.nn.Sequential(self.encoder, self.head).state_dict()
        for k, v in self.target.state_dict().items():
            if v.dtype.is_floating_point:
                v.copy_(tau * v + (1 - tau) * online[k])


def idx(name):
    raw = gzip.open(f"{DATA}/{name}-ubyte.gz").read()
    rank = struct.unpack(">I", raw[:4])[0] & 0xFF
    dims = struct.unpack(">" + "I" * rank, raw[4:4 + 4 * rank])
    return torch.frombuffer(bytearray(raw[4 + 4 * rank:]), dtype=torch.uint8).reshape(dims)


def torchvision_crops(n, height, width, scale_min):
    """RandomResizedCrop's boxes: whole pixels, ten tries at a random area
    and log-uniform aspect ratio that fits, else the whole image. Returns
    width, height and centre in affine_grid's [-1, 1] units."""
    out = torch.zeros(4, n)
    for i in range(n):
        w, h, left, top = width, height, 0, 0
        for _ in range(10):
            target = height * width * (scale_min + (1 - scale_min) * torch.rand(1).item())
            aspect = math.exp(math.log(3 / 4) + math.log(16 / 9) * torch.rand(1).item())
            cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < cw <= width and 0 < ch <= height:
                w, h = cw, ch
                top = torch.randint(0, height - h + 1, (1,)).item()
                left = torch.randint(0, width - w + 1, (1,)).item()
                break
        out[:, i] = torch.tensor([w / width, h / height, (2 * left + w) / width - 1,
                                  (2 * top + h) / height - 1])
    return out[0], out[1], out[2], out[3]


def augment(x, c):
    """One view of a batch of [n, 1, 28, 28] images in [0, 1], normalised."""
    n = x.shape[0]
    if c["crop"] == "torchvision":
        w, h, cx, cy = torchvision_crops(n, x.shape[2], x.shape[3], c["crop_min"])
    else:
        area = torch.empty(n).uniform_(c["crop_min"], 1.0)
        ratio = torch.exp(torch.empty(n).uniform_(math.log(3 / 4), math.log(4 / 3)))
        w, h = torch.sqrt(area * ratio).clamp(max=1), torch.sqrt(area / ratio).clamp(max=1)
        cx, cy = (torch.rand(n) * 2 - 1) * (1 - w), (torch.rand(n) * 2 - 1) * (1 - h)
    # Undo a turn of up to `rotation` degrees, then the flip and the resize.
    turn = (torch.rand(n) * 2 - 1) * math.radians(c["rotation"])
    sin, cos = torch.sin(turn), torch.cos(turn)
    fw = w * torch.where(torch.rand(n) < c["flip"], -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = fw * cos, -fw * sin, cx
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = h * sin, h * cos, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    j = c["jitter"]
    brightness = 1 + (torch.rand(n, 1, 1, 1) * 2 - 1) * j
    contrast = 1 + (torch.rand(n, 1, 1, 1) * 2 - 1) * j
    # jitter_order=random and jitter_clamp=each are torchvision's ColorJitter:
    # the ops in a random order per image, each clamping to [0, 1].
    each = c["jitter_clamp"] == "each"

    def bright(t):
        t = t * brightness
        return t.clamp(0, 1) if each else t

    def contr(t):
        m = t.mean((1, 2, 3), keepdim=True)
        t = m + (t - m) * contrast
        return t.clamp(0, 1) if each else t
    jittered = contr(bright(y))
    if c["jitter_order"] == "random":
        first = (torch.rand(n, 1, 1, 1) < 0.5).float()
        jittered = first * jittered + (1 - first) * bright(contr(y))
    jittered = jittered.clamp(0, 1)
    apply = (torch.rand(n, 1, 1, 1) < c["jitter_p"]).float()
    y = apply * jittered + (1 - apply) * y
    noisy = (torch.rand(n, 1, 1, 1) < c["noise_p"]).float()
    y = y + noisy * torch.randn_like(y) * c["noise_std"]
    if c["noise_clamp"]:
        y = y.clamp(0, 1)
    return (y - MEAN) / STD


@torch.no_grad()
def features(encoder, x):
    encoder.eval()
    out = torch.cat([encoder((x[i:i + 1000] - MEAN) / STD) for i in range(0, len(x), 1000)])
    encoder.train()
    return out


@torch.no_grad()
def knn(train, test, train_labels, test_labels, k=20, temperature=0.07):
    train, test = F.normalize(train, dim=1), F.normalize(test, dim=1)
    correct = 0
    for i in range(0, len(test), 1000):
        sims, nearest = (test[i:i + 1000] @ train.T).topk(k, dim=1)
        votes = torch.zeros(len(sims), 10).scatter_add_(1, train_labels[nearest],
                                                        (sims / temperature).exp())
        correct += (votes.argmax(1) == test_labels[i:i + 1000]).sum().item()
    return 100 * correct / len(test)


def load_darkmatter(encoder, path):
    """The `encoder.*` tensors of a darkmatter checkpoint (safetensors: an
    8-byte little-endian header length, a JSON header, raw little-endian
    data) into `encoder`, whose Sequential indices follow conv1, bn1, relu,
    conv2, ... as in pytorch_reference.convnet."""
    raw = open(path, "rb").read()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + size])
    layer = {"conv1": 0, "bn1": 1, "conv2": 3, "bn2": 4, "conv3": 6, "bn3": 7,
             "conv4": 9, "bn4": 10}
    state = {}
    for name, entry in header.items():
        if not name.startswith("encoder.") or entry["dtype"] != "F32":
            continue
        module, field = name[len("encoder."):].split(".", 1)
        start, end = entry["data_offsets"]
        data = bytearray(raw[8 + size + start:8 + size + end])
        state[f"{layer[module]}.{field}"] = torch.frombuffer(
            data, dtype=torch.float32).reshape(entry["shape"])
    encoder.load_state_dict(state, strict=False)
    missing = set(k for k in encoder.state_dict() if "num_batches" not in k) - set(state)
    if missing:
        sys.exit(f"{path}: no tensors for {sorted(missing)}")


def main():
    c = dict(CONFIG)
    for arg in sys.argv[1:]:
        if "=" in arg:
            key, value = arg.split("=", 1)
            c[key] = type(CONFIG[key])(value)
    torch.manual_seed(c["seed"])
    xtr = idx("train-images-idx3").float().div(255).unsqueeze(1)
    ytr = idx("train-labels-idx1").long()
    xte = idx("t10k-images-idx3").float().div(255).unsqueeze(1)
    yte = idx("t10k-labels-idx1").long()
    encoder, head = convnet(1), projector([128] + widths(c["projector"]))
    if "--checkpoint" in sys.argv:
        path = sys.argv[sys.argv.index("--checkpoint") + 1]
        load_darkmatter(encoder, path)
        acc = knn(features(encoder, xtr), features(encoder, xte), ytr, yte)
        print(json.dumps(dict(checkpoint=path, knn_top1=acc)))
        return
    if "--baselines" in sys.argv:
        raw = knn(xtr.flatten(1), xte.flatten(1), ytr, yte)
        random_init = knn(features(encoder, xtr), features(encoder, xte), ytr, yte)
        print(json.dumps(dict(raw_pixels=raw, random_init=random_init)))
        return
    lr = c["lr"] * c["batch"] / 256
    siamese = Siamese(c, encoder, head) if c["method"] in ("byol", "simsiam") else None
    params = siamese.trained() if siamese else list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, c["beta2"]), weight_decay=c["weight_decay"])
    per_epoch = len(xtr) // c["batch"]
    total, warm = per_epoch * c["epochs"], int(c["warmup"] * per_epoch)
    step, start = 0, time.time()
    for epoch in range(c["epochs"]):
        order = torch.randperm(len(xtr))
        for b in range(per_epoch):
            if step < warm:
                scale = (step + 1) / warm
            else:
                scale = 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
            for group in opt.param_groups:
                group["lr"] = lr * scale
            x = xtr[order[b * c["batch"]:(b + 1) * c["batch"]]]
            if siamese:
                loss = siamese.loss(augment(x, c), augment(x, c))
            else:
                loss = LOSSES[c["method"]](head(encoder(augment(x, c))),
                                           head(encoder(augment(x, c))))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if siamese:
                siamese.after_update(c["ema"], step, total)
            step += 1
        acc = knn(features(encoder, xtr), features(encoder, xte), ytr, yte)
        print(json.dumps(dict(epoch=epoch + 1, knn_top1=acc, seconds=round(time.time() - start),
                              config=c)), flush=True)


if __name__ == "__main__":
    main()
