"""data_path: agebench's cached loader + device augmentation vs decoding JPEGs every epoch.

Cached path (agebench): `FaceDataModule` slices whole uint8 batches out of the memory-mapped decode-
once cache; random crop, flip and normalisation run per batch on the device (agebench.data.augment).
JPEG path (the usual alternative): the same images written once as JPEG files (quality 95) in a temp
dir; a plain map-style Dataset opens and decodes one file per sample with PIL every epoch (and, with
--jpeg-size larger than the cache's 256 px, resizes it as a loader of original photos must), crops,
flips and normalises it per sample in numpy, and the default collate stacks the batch.

Measured, interleaved (JPEG epoch, cached epoch, ...; the first of each is warm-up, medians after):
  1. data-only epoch time of each path and their ratio (JPEG ÷ cached);
  2. a training epoch (LMTCNN-1-1 steps fed by each path) and its ratio;
  3. the cached loader's images/s ÷ the model's training images/s (the loader must be ≥ 3× faster
     than the model consumes, so it is never the bottleneck). Printed last.
Both loaders use `--workers` loader processes (default 0: the same process and threads as the model).

    python benchmarks/data_path.py [--quick] [--images 384] [--batch 64] [--workers 0] [--jpeg-size 816]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import common
import numpy as np
import torch

TARGET_LOADER_VS_MODEL = 3.0


class JpegFiles(torch.utils.data.Dataset):
    """One JPEG decoded per sample, every epoch; per-sample random crop + flip + normalise (numpy)."""

    def __init__(self, paths: list[Path], targets: dict[str, np.ndarray], crop: int, size: int, seed: int = 0):
        from agebench.data.augment import MEAN, STD

        self.paths, self.targets, self.crop, self.size = paths, targets, int(crop), int(size)
        self.mean = np.asarray(MEAN, dtype=np.float32)
        self.std = np.asarray(STD, dtype=np.float32)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            im = im.convert("RGB")
            if im.size != (self.size, self.size):  # originals larger than the training size: resize every epoch
                im = im.resize((self.size, self.size), Image.BILINEAR)
            img = np.asarray(im)
        h, w, _ = img.shape
        y, x = self.rng.integers(0, h - self.crop + 1), self.rng.integers(0, w - self.crop + 1)
        img = img[y:y + self.crop, x:x + self.crop]
        if self.rng.random() < 0.5:
            img = img[:, ::-1]
        img = (img.astype(np.float32) / 255.0 - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))), {k: torch.from_numpy(v[i]) for k, v in self.targets.items()}


def write_jpegs(images: np.ndarray, folder: Path, size: int, quality: int = 95) -> list[Path]:
    from PIL import Image

    paths = []
    for i, img in enumerate(images):
        path = folder / f"{i:05d}.jpg"
        im = Image.fromarray(np.asarray(img))
        if size != im.size[0]:
            im = im.resize((size, size), Image.BICUBIC)
        im.save(path, quality=quality)
        paths.append(path)
    return paths


def main() -> None:
    p = common.parser(__doc__)
    p.add_argument("--images", type=int, default=None, help="images per epoch (default 384; 128 with --quick)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 64; 32 with --quick)")
    p.add_argument("--workers", type=int, default=0, help="loader worker processes for both paths")
    p.add_argument("--model", default="lmtcnn_1_1")
    p.add_argument("--jpeg-size", type=int, default=None,
                   help="side of the JPEG files (default: the cache's 256 px, i.e. pre-resized files); e.g. 816 for "
                        "Adience-sized originals, which the JPEG path then resizes to 256 every epoch")
    args = p.parse_args()
    device, threads, meta = common.start(args, "data_path: cached uint8 batches + device augmentation vs JPEG decoding every epoch")

    from agebench.data.augment import random_crop_flip, to_float_nchw
    from agebench.data.datamodule import FaceDataModule
    from agebench.data.protocols import Fold

    n = int(args.images or (128 if args.quick else 384))
    batch = int(args.batch or (32 if args.quick else 64))
    reps = int(args.reps or common.MIN_REPS)
    cfg = common.compose([*common.model_overrides(args.model), "tasks=age_gender", "logger=none"])
    size = int(cfg.model.input_size)
    images, records = common.synthetic_images(n, common.load_size_for(size))
    tasks, targets = common.task_setup(cfg, records)
    channels_last = bool(cfg.trainer.channels_last) if device.type == "cpu" else True
    on_gpu = device.type == "cuda"

    fold = Fold(0, train=np.arange(n), val=np.arange(0), test=np.arange(0))
    cached_loader = FaceDataModule(images, targets, fold, batch_size=batch, num_workers=args.workers, seed=0,
                                   pin_memory=on_gpu).train_dataloader()
    aug_gen = torch.Generator().manual_seed(0)

    def cached_batches():
        for x, t in cached_loader:
            x = x.to(device, non_blocking=True)
            t = {k: v.to(device, non_blocking=True) for k, v in t.items()}
            yield to_float_nchw(random_crop_flip(x, size, aug_gen), channels_last), t

    tmp = tempfile.TemporaryDirectory(prefix="agebench-jpeg-")
    start = time.perf_counter()
    jpeg_size = int(args.jpeg_size or images.shape[1])
    paths = write_jpegs(images, Path(tmp.name), jpeg_size)
    write_s = time.perf_counter() - start
    jpeg_mb = sum(q.stat().st_size for q in paths) / 1e6
    jpeg_loader = torch.utils.data.DataLoader(JpegFiles(paths, targets, size, int(images.shape[1])), batch_size=batch, shuffle=True,
                                              num_workers=args.workers, pin_memory=on_gpu,
                                              persistent_workers=args.workers > 0)

    def jpeg_batches():
        for x, t in jpeg_loader:
            x = x.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, {k: v.to(device, non_blocking=True) for k, v in t.items()}

    model = common.build_model(cfg, tasks, size).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-4, fused=True)

    def train_step(x, t):
        out = model(x)
        loss = sum(task.loss(out[task.name], t[task.name]) for task in tasks)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def data_epoch(batches):
        def run():
            for _batch in batches():
                pass
            common.sync(device)
        return common.timed(run, device)

    def train_epoch(batches):
        def run():
            model.train()
            for x, t in batches():
                train_step(x, t)
        return common.timed(run, device)

    # model consumption rate on ready batches (same shapes as the loaders deliver)
    ready = list(cached_batches())

    def model_epoch():
        model.train()
        for x, t in ready:
            train_step(x, t)

    times = {k: [] for k in ("jpeg_data", "cached_data", "jpeg_train", "cached_train", "model_only")}
    for rep in range(reps + 1):  # rep 0: warm-up
        measured = {"jpeg_data": data_epoch(jpeg_batches), "cached_data": data_epoch(cached_batches),
                    "model_only": common.timed(model_epoch, device),
                    "jpeg_train": train_epoch(jpeg_batches), "cached_train": train_epoch(cached_batches)}
        if rep:
            for k, v in measured.items():
                times[k].append(v)
    tmp.cleanup()

    ratio_data = [j / c for j, c in zip(times["jpeg_data"], times["cached_data"])]
    ratio_train = [j / c for j, c in zip(times["jpeg_train"], times["cached_train"])]
    loader_vs_model = [m / c for m, c in zip(times["model_only"], times["cached_data"])]
    jpeg_vs_model = [m / j for m, j in zip(times["model_only"], times["jpeg_data"])]
    img_s = {k: n / common.median(v) for k, v in times.items()}

    print()
    print(common.table(["epoch of", "cached (agebench) s", "JPEG decode s", "JPEG ÷ cached"], [
        ["data only (loader + augmentation)", f"{common.median(times['cached_data']):.3f}",
         f"{common.median(times['jpeg_data']):.3f}", common.spread(ratio_data)],
        [f"training ({args.model}, batch {batch})", f"{common.median(times['cached_train']):.3f}",
         f"{common.median(times['jpeg_train']):.3f}", common.spread(ratio_train)],
    ]))
    print()
    print(common.table(["throughput", "images/s", "÷ model consumption"], [
        ["cached loader + device augmentation", f"{img_s['cached_data']:.0f}", common.spread(loader_vs_model)],
        ["JPEG decode + per-sample augmentation", f"{img_s['jpeg_data']:.0f}", common.spread(jpeg_vs_model)],
        [f"model training steps ({args.model})", f"{img_s['model_only']:.1f}", "1"],
    ]))
    print(f"\n   {n} images cached at {images.shape[1]}px → {size} crops, batch {batch}, workers {args.workers}, "
          f"channels_last {channels_last}; JPEG files {jpeg_size}px, {jpeg_mb:.1f} MB (written in {write_s:.1f} s)")

    headline = common.median(loader_vs_model)
    payload = {"images": n, "load_size": int(images.shape[1]), "jpeg_size": jpeg_size, "crop": size, "batch": batch, "workers": args.workers,
               "model": args.model, "channels_last": channels_last, "reps": reps, "epoch_s": times,
               "img_s": img_s, "ratio_data_epoch": common.median(ratio_data),
               "ratio_train_epoch": common.median(ratio_train), "loader_vs_model": headline,
               "jpeg_loader_vs_model": common.median(jpeg_vs_model), "target_loader_vs_model": TARGET_LOADER_VS_MODEL,
               "jpeg_mb": round(jpeg_mb, 2)}
    common.record_result("data_path", args, meta, payload)
    print(f"   JPEG ÷ cached epoch time: {common.spread(ratio_data)}× (data only), {common.spread(ratio_train)}× "
          f"(training epoch), median [range]")
    print(common.ratio_line("data_path ratio (cached loader img/s ÷ model training img/s)", loader_vs_model,
                            TARGET_LOADER_VS_MODEL, fmt=".1f", unit="×"))


if __name__ == "__main__":
    main()
