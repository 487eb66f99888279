"""Show training samples as the model sees them: `python -m lavis.tools.show_sample --cfg-path CFG [--index N]`.

Builds the run's datasets and model as `train.py` does and prints sample N of each dataset's
training split: the rendered prompt (the model's chat template, or ChatML), the supervised spans
between `[[` and `]]` (what the loss trains on), each image as `<image: N slots>`; then checks
that the supervised tokens are exactly the assistant replies with their end-of-turn tokens.
"""

import argparse
import logging
import sys

import lavis  # noqa: F401  (registers every component)
from lavis.common.config import Config
from lavis.common.errors import UserError, report
from lavis.run_builder import build_run


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg-path", required=True, help="run config YAML")
    parser.add_argument("--index", type=int, default=0, help="which sample of each training split (default 0)")
    parser.add_argument("--options", nargs="+", default=[], help="overrides of config keys")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        cfg = Config(args)
        task, datasets, model = build_run(cfg)
        split = cfg.run_cfg.train_splits[0]
        for name, splits in datasets.items():
            if split not in splits:
                continue
            dataset = splits[split]
            if not 0 <= args.index < len(dataset):
                raise UserError(f"--index {args.index}: {name}/{split} has {len(dataset)} samples")
            print(f"== {name}/{split} {task.show_sample(model, dataset, args.index)}")
            sample = dataset[args.index]
            if hasattr(model.prompt, "check_labels"):  # template prompts (ChatML's are the original's)
                encoded = model.prompt.encode_conversation(sample["conversations"], model.max_txt_len)
                model.prompt.check_labels(sample["conversations"], encoded, model.max_txt_len, sample["where"])
                print("labels: the assistant replies and their end-of-turn tokens, as they should be")
    except UserError as err:
        return report(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
