"""Precompute the frozen image side's features: `python -m lavis.tools.cache_features --cfg-path CFG [--options ...]`.

Builds the model and datasets from the run config exactly as `train.py` does (same seed, so a
randomly initialised encoder is the same one), runs ViT -> ln_vision -> Q-former once per
distinct image of every split and once per sampled frame of every distinct video (batches of
`run.batch_size_eval`, on `run.device`, eval mode, no gradients) and writes the query outputs before `llm_proj` under
`<vis_root>/.feature_cache/<settings key>/` (layout: `lavis/datasets/feature_cache.py`).
A cache that is already complete is left as is. Train from it with
`--options run.use_cached_features=True`.
"""

import argparse
import logging
import os
import sys

import torch
from PIL import Image
from tqdm import tqdm

import lavis  # noqa: F401  (registers every component)
from lavis.common.config import Config
from lavis.common.errors import UserError, report
from lavis.datasets.cached_features import cache_groups
from lavis.datasets.feature_cache import FeatureCacheError, read_index, write_cache
from lavis.processors.video import read_frames
from lavis.run_builder import build_run


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg-path", required=True, help="run config YAML (the one you train with)")
    parser.add_argument("--options", nargs="+", default=[], help="overrides of config keys, e.g. model.freeze_vit=True")
    return parser.parse_args(argv)


def compute_features(model, processor, images, batch_size, device, desc):
    """{sha256: (num_query_token, hidden) CPU tensor} for {sha256: image file}."""
    features = {}
    items = sorted(images.items())
    with torch.no_grad(), tqdm(total=len(items), desc=desc, unit="img", dynamic_ncols=True) as progress:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            pixels = []
            for _, path in chunk:
                try:
                    with Image.open(path) as image:
                        pixels.append(processor(image.convert("RGB")))
                except (OSError, ValueError, Image.DecompressionBombError) as err:
                    raise FeatureCacheError(f"cannot cache {path}: not a readable image ({err})") from None
            out = model.encode_queries(torch.stack(pixels).to(device)).float().cpu()
            features.update({h: row.clone() for (h, _), row in zip(chunk, out)})
            progress.update(len(chunk))
    return features


def compute_video_features(model, processor, videos, batch_size, device, desc):
    """{video key: (frames, num_query_token, hidden) CPU tensor} for {video key: (file, max_frames)}."""
    features = {}
    with torch.no_grad():
        for key, (path, max_frames) in tqdm(sorted(videos.items()), desc=desc, unit="video", dynamic_ncols=True):
            pixels = torch.stack([processor(frame) for frame in read_frames(path, max_frames)])
            out = [
                model.encode_queries(pixels[i : i + batch_size].to(device)) for i in range(0, len(pixels), batch_size)
            ]
            features[key] = torch.cat(out).float().cpu()
    return features


def cache_all(cfg, model, datasets, device):
    """Write every missing or stale cache of the run's datasets; returns [(folder, images, written?)]."""
    model.to(device).eval()
    done = []
    for group in cache_groups(cfg, model, datasets, "lavis.tools.cache_features"):
        splits = ", ".join(f"{n}/{s}" for n, s, _ in group["members"])
        index = read_index(group["folder"])
        if index is not None and all(h in index["entries"] for h in group["paths"].values()):
            logging.info("feature cache for %s is up to date: %s", splits, group["folder"])
            done.append((group["folder"], len(group["paths"]), False))
            continue
        logging.info(
            "feature cache for %s is %s: computing %s", splits, "stale" if index else "missing", group["folder"]
        )
        videos = group["videos"]
        files = {h: os.path.join(group["vis_root"], p) for p, h in group["paths"].items() if p not in videos}
        clips = {key: (os.path.join(group["vis_root"], p), frames) for p, (key, frames) in videos.items()}
        processor = group["members"][0][2].vis_processor
        batch = max(1, cfg.run_cfg.batch_size_eval)
        features = compute_features(model, processor, files, batch, device, splits)
        frames = compute_video_features(model, processor, clips, batch, device, splits)
        write_cache(group["folder"], group["info"], features, frames)
        logging.info(
            "wrote the features of %d images and %d videos (%d frames) to %s",
            len(features),
            len(frames),
            sum(len(f) for f in frames.values()),
            group["folder"],
        )
        done.append((group["folder"], len(group["paths"]), True))
    return done


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        cfg = Config(args)
        if cfg.run_cfg.threads:
            torch.set_num_threads(cfg.run_cfg.threads)
        device = cfg.run_cfg.device
        if device.startswith("cuda") and not torch.cuda.is_available():
            logging.warning("run.device=%s but no CUDA device is available: computing on CPU", device)
            device = "cpu"
        _, datasets, model = build_run(cfg)  # as train.py builds them
        for folder, count, written in cache_all(cfg, model, datasets, torch.device(device)):
            print(f"{'wrote' if written else 'up to date'}: {folder} ({count} images)")
    except UserError as err:
        return report(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
