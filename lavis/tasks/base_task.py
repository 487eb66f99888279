"""Tasks: what the runner trains and how it evaluates (built from the `run.task` name)."""

import logging
from collections import defaultdict

import torch

from lavis.common.config import ConfigError
from lavis.common.errors import MissingFilesError
from lavis.common.registry import registry


class BaseTask:
    @classmethod
    def setup_task(cls, cfg=None):
        return cls()

    def build_model(self, cfg):
        model_cfg = cfg.model_cfg
        return registry.get_model_class(model_cfg.arch).from_config(model_cfg)

    def check_files(self, cfg):
        """Stop before building anything if files the config names are missing (all listed at once)."""
        missing = registry.get_model_class(cfg.model_cfg.arch).missing_files(cfg.model_cfg)
        for name, dataset_cfg in cfg.datasets_cfg.items():
            missing += registry.get_builder_class(name)(dataset_cfg).missing_files(name)
        if missing:
            raise MissingFilesError(missing)

    @staticmethod
    def show_sample(model, dataset, index=0):
        """Sample `index` of `dataset` as the model sees it: its prompt text with the supervised
        spans between `[[` and `]]` and each image as `<image: N slots>`."""
        sample = dataset[index]
        encoded = model.prompt.encode_conversation(sample["conversations"], model.max_txt_len)
        where = sample.get("where", f"sample {index}")
        return (
            f"{where} ({len(encoded.input_ids)} tokens, {encoded.num_images} image(s)):\n{model.prompt.show(encoded)}"
        )

    def build_datasets(self, cfg):
        """{dataset name: {split: dataset}} for every dataset of the run config."""
        datasets = {}
        for name, dataset_cfg in cfg.datasets_cfg.items():
            builder = registry.get_builder_class(name)(dataset_cfg)
            datasets[name] = builder.build_datasets()
        if not datasets:
            raise ConfigError("the run config names no datasets (its 'datasets' section is empty)")
        return datasets

    def train_step(self, model, samples):
        output = model(samples)
        return output["loss"], {k: v for k, v in output.items() if k != "loss"}

    @torch.no_grad()
    def evaluation(self, model, data_loader, max_new_tokens=32):
        """Answer each sample's first question by greedy generation; exact-match accuracy.

        Returns {"accuracy": ..., "total": n, "by_group": {"colour/en": acc, ...}} where groups
        come from the rows' optional `qtype` and `lang` keys.
        """
        hits, counts = defaultdict(int), defaultdict(int)
        examples = []
        for batch in data_loader:
            prompts, keep = [], []
            offset = 0
            for conversation in batch["conversations"]:
                question = conversation[0]["value"]
                ids, num_images = model.prompt.generation_ids(question)
                prompts.append(ids)
                keep += range(offset, offset + num_images)
                offset += question.count("<ImageHere>")
            images, features = batch.get("image"), batch.get("image_features")  # features: run.use_cached_features
            images = images[keep] if keep and images is not None else None
            features = features[keep] if keep and features is not None else None
            replies = model.generate_from_ids(prompts, images, features, max_new_tokens=max_new_tokens, do_sample=False)
            for reply, conversation, meta in zip(replies, batch["conversations"], batch["meta"]):
                predicted = model.llm_tokenizer.decode(reply, skip_special_tokens=True).strip()
                expected = conversation[1]["value"].strip()
                group = "/".join(str(meta[k]) for k in ("qtype", "lang") if k in meta) or "all"
                counts[group] += 1
                hits[group] += int(predicted == expected)
                if len(examples) < 6:
                    examples.append((conversation[0]["value"], expected, predicted))
        total = sum(counts.values())
        for question, expected, predicted in examples:
            logging.info("Q: %s | expected: %s | got: %s", question, expected, predicted)
        return {
            "accuracy": sum(hits.values()) / max(total, 1),
            "total": total,
            "by_group": {g: hits[g] / counts[g] for g in sorted(counts)},
        }
