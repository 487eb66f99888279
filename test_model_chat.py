"""Quick sanity chat with a trained MiniGPT4Qwen: `python test_model_chat.py`.

Loads a checkpoint (default: the latest one `python train.py` wrote for the tiny default),
shows it an image (default: a generated one, a coloured shape like the tiny default's
data) and asks one or more questions in one conversation, printing each answer.  In a
`--question`, `<ImageHere>` marks where the image goes (only the first question needs it;
a first question without it gets the image in front).

    python test_model_chat.py
    python test_model_chat.py --ckpt-path CKPT --img-path IMG \
        --question "<Img><ImageHere></Img> Describe it." --question "And its colour?"

Exit status 0 when every question was answered; 2 with a one-line reason on stderr when the
checkpoint, the image or the model cannot be loaded.
"""

import argparse
import sys

from lavis import chat
from lavis.common.errors import UserError, report
from lavis.common.generation import check_setting

DEFAULT_QUESTIONS = ["<Img><ImageHere></Img> What colour is the shape?", "图中是什么形状？"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Sanity chat with a MiniGPT4Qwen checkpoint.")
    parser.add_argument("--ckpt-path", default=None, help="checkpoint (default: the tiny default's latest)")
    parser.add_argument("--img-path", default=None, help="image (default: a generated red circle)")
    parser.add_argument(
        "--question",
        action="append",
        default=None,
        help="a question (repeat for several turns; default: an English then a Chinese question)",
    )
    parser.add_argument(
        "--model-type", default=None, choices=["qwen7b_chat", "tiny"], help="for checkpoints without a config"
    )
    parser.add_argument("--max-new-tokens", type=int, default=None, help="answer length limit")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cpu-only", action="store_true")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    questions = args.question or DEFAULT_QUESTIONS
    try:
        check_setting("seed", args.seed)  # before anything loads
        if args.max_new_tokens is not None:
            check_setting("max_new_tokens", args.max_new_tokens)
        image_path = args.img_path or chat.example_image_path("circle", "red")
        image = chat.load_image(image_path)
        chat_model = chat.load_chat_model(args.ckpt_path, args.model_type, device="cpu" if args.cpu_only else None)
        session = chat.ChatSession(chat_model, seed=args.seed)
        if args.max_new_tokens is not None:
            session.settings.set("max_new_tokens", args.max_new_tokens)
        session.add_images([image], labels=[image_path])
        print(f"checkpoint: {chat_model.checkpoint} (model type {chat_model.model_type})")
        print(f"image: {image_path}")
        for question in questions:
            # The questions are the script's (trusted): `<ImageHere>` marks the image slot.
            if "<ImageHere>" in question:
                query = chat.parts_from_template(question)
            else:
                query = question
            response = session.ask(query)
            print(f"User: {question}")
            print(f"MiniGPT4Qwen: {response}")
    except UserError as err:
        return report(err, fold=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
