"""Cached frozen-encoder features, from the run config to the datasets.

`run.use_cached_features: True` makes every dataset serve its images' cached Q-former outputs
(`InstructionDataset.use_feature_store`), so a training step runs only `llm_proj` and the LLM.
The runner calls `attach_cached_features` once the model and datasets are built;
`lavis.tools.cache_features` uses `cache_groups` to know what to compute and where to put it.
Both refuse, with one line naming the config keys, an image side that trains (its features
would change every step) and a random image processor (the cache would freeze one draw).
"""

import logging
import os

from lavis.common.dtypes import DTYPES
from lavis.datasets.feature_cache import (
    COMMAND,
    FeatureCacheError,
    FeatureStore,
    cache_folder,
    file_sha256,
    read_index,
    settings,
    tensors_hash,
    video_key,
    why_missing,
)

FROZEN_KEYS = ("freeze_vit", "freeze_qformer", "freeze_queries")


def check_frozen(model_cfg, what):
    """The image side must be frozen: `freeze_vit`, `freeze_qformer`, `freeze_queries` all true."""
    wrong = [f"model.{k}={model_cfg[k]}" for k in FROZEN_KEYS if not model_cfg[k]]
    if model_cfg.get("unfreeze_pos_embed"):
        wrong.append("model.unfreeze_pos_embed=True")
    if wrong:
        raise FeatureCacheError(
            f"{what} needs a frozen image side, but {', '.join(wrong)}: features of an encoder that trains change "
            f"every step; set model.freeze_vit=True model.freeze_qformer=True model.freeze_queries=True "
            f"(and model.unfreeze_pos_embed=False)"
        )


def random_transforms(processor):
    """Names of the random transforms in an image processor (those whose class says Random, p > 0)."""
    transforms = getattr(getattr(processor, "transform", None), "transforms", [])
    return [type(t).__name__ for t in transforms if type(t).__name__.startswith("Random") and getattr(t, "p", 1) > 0]


def check_deterministic(cfg, name, split, dataset, what):
    randoms = random_transforms(dataset.vis_processor)
    if randoms:
        side = "train" if split == "train" else "eval"
        section = cfg.datasets_cfg[name].vis_processor.get(side) or cfg.datasets_cfg[name].vis_processor.get("train")
        raise FeatureCacheError(
            f"{what} refused: datasets.{name}.vis_processor.{side} ({section.name if section else '?'}) applies random "
            f"augmentation ({', '.join(randoms)}) and cached features would "
            "freeze one draw of it; use a deterministic processor there (blip2_image_eval) or set "
            "run.use_cached_features=False"
        )


def cache_groups(cfg, model, datasets, what):
    """[{"folder", "vis_root", "info", "members": [(name, split, dataset)], "paths": {path: sha256 or
    video key}, "videos": {video path: (video key, max_frames)}}]: one group per image folder and
    processor settings (splits that share both share a cache)."""
    check_frozen(cfg.model_cfg, what)
    encoder = tensors_hash(model.image_encoder_state())
    dtype = cfg.run_cfg.cached_features_dtype
    if dtype not in DTYPES:
        raise FeatureCacheError(f"run.cached_features_dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    groups, hashes = {}, {}
    for name, splits in datasets.items():
        for split, dataset in splits.items():
            if not hasattr(dataset, "image_paths") or dataset.vis_root is None:
                raise FeatureCacheError(
                    f"{what}: dataset {name} ({type(dataset).__name__}) has no image folder to cache"
                )
            check_deterministic(cfg, name, split, dataset, what)
            info = settings(dataset.vis_processor, encoder, dtype)
            folder = cache_folder(dataset.vis_root, info)
            group = groups.setdefault(
                folder,
                {
                    "folder": folder,
                    "vis_root": dataset.vis_root,
                    "info": info,
                    "members": [],
                    "paths": {},
                    "videos": {},
                },
            )
            group["members"].append((name, split, dataset))
            for path in dataset.image_paths() + dataset.video_paths():
                full = os.path.join(dataset.vis_root, path)
                if full not in hashes:
                    hashes[full] = file_sha256(full)
                group["paths"][path] = hashes[full]
            for path in dataset.video_paths():
                key = video_key(group["paths"][path], dataset.max_frames)
                if group["videos"].get(path, (key,))[0] != key:
                    raise FeatureCacheError(
                        f"{what}: video {path} is read with different max_frames by the datasets sharing "
                        f"{dataset.vis_root}; give them the same datasets.*.max_frames"
                    )
                group["paths"][path] = key
                group["videos"][path] = (key, dataset.max_frames)
    return list(groups.values())


def attach_cached_features(cfg, model, datasets):
    """With `run.use_cached_features`, point every dataset at its feature cache (or refuse)."""
    if not cfg.run_cfg.use_cached_features:
        return
    for group in cache_groups(cfg, model, datasets, "run.use_cached_features: True"):
        splits = ", ".join(f"{n}/{s}" for n, s, _ in group["members"])
        if read_index(group["folder"]) is None:
            reason = why_missing(group["vis_root"], group["info"])
            logging.error("feature cache for %s %s", splits, reason)
            raise FeatureCacheError(f"no feature cache for {splits} at {group['folder']}: {reason}; run: {COMMAND}")
        store = FeatureStore(group["folder"], group["paths"])
        for _, _, dataset in group["members"]:
            dataset.use_feature_store(store)
        logging.info("cached features for %s: %d images and videos from %s", splits, len(store), group["folder"])
