"""The user turn each evaluation benchmark asks, as the field writes it (LLaVA-1.5's eval prompts).

Place in the flow: an evaluation item (`lavis/datasets/eval_data/`) -> `benchmark_prompt` here ->
the model's chat template (`model.prompt`) -> batched generation -> the benchmark task's parser
and score (`lavis/tasks/benchmark_task.py`).  The synthetic training data
(`lavis/datasets/synthetic/shapes_benchmarks.py`) asks its questions with the same texts, so a
model trained on them is evaluated on the style it learned.

Kinds:
  yes_no          the question as released (MME's end in "Please answer yes or no.")
  short_answer    question + "Answer the question using a single word or phrase." (POPE, VQAv2,
                  OK-VQA, GQA)
  multiple_choice [hint +] question + "A. ..." lines + "Answer with the option's letter from the
                  given choices directly." (MMBench, SEED-Bench; MMBench-CN: "请直接回答选项字母。")
  caption         "Provide a one-sentence caption for the provided image." (lmms-eval's COCO prompt)
Chinese items (meta "lang" "zh" or "cn") get the Chinese instructions.
"""

from lavis.processors.chat_format import IMAGE_TOKEN

IMAGE_PREFIX = f"<Img>{IMAGE_TOKEN}</Img> "  # the image before the question, as the training data put it
KINDS = ("yes_no", "short_answer", "multiple_choice", "caption")
INSTRUCTIONS = {
    "short_answer": {"en": "Answer the question using a single word or phrase.", "zh": "请用一个词或短语回答。"},
    "multiple_choice": {
        "en": "Answer with the option's letter from the given choices directly.",
        "zh": "请直接回答选项字母。",
    },
    "caption": {"en": "Provide a one-sentence caption for the provided image.", "zh": "请用一句话描述这张图片。"},
}


def prompt_lang(item) -> str:
    """'zh' for Chinese items (MMBench-CN's meta lang is 'cn'), else 'en'."""
    return "zh" if str((item.get("meta") or {}).get("lang", "en")).lower() in ("zh", "cn") else "en"


def options_text(choices) -> str:
    """'A. cat\\nB. dog' from {'A': 'cat', 'B': 'dog'} (in the given order)."""
    return "\n".join(f"{letter}. {text}" for letter, text in choices.items())


def benchmark_prompt(kind, item) -> str:
    """The user turn (image slots first) for `item` of a benchmark of this `kind`."""
    if kind not in KINDS:
        raise ValueError(f"unknown prompt kind {kind!r}; choose one of {', '.join(KINDS)}")
    lang = prompt_lang(item)
    if kind == "caption":
        return IMAGE_PREFIX + INSTRUCTIONS["caption"][lang]
    question = item["question"].strip()
    if kind == "yes_no":
        return IMAGE_PREFIX + question
    if kind == "short_answer":
        return f"{IMAGE_PREFIX}{question}\n{INSTRUCTIONS['short_answer'][lang]}"
    hint = (item.get("hint") or "").strip()
    parts = [hint, question] if hint else [question]
    return "\n".join([IMAGE_PREFIX + parts[0], *parts[1:], options_text(item["choices"]), INSTRUCTIONS[kind][lang]])
