"""Benchmark tasks: the field's evaluation of a chat model on MME, MMBench, POPE, COCO caption,
VQAv2 / OK-VQA, GQA and SEED-Bench, each registered by name (`run.task: mme`, ...).

Place in the flow: `evaluate.py` (or the runner, for `run.valid_splits` naming a benchmark) ->
`evaluate_benchmark` here: the benchmark's items (`lavis/datasets/eval_data/`, images through
`EvalDataset`) -> the task's questions (`asks`: MMBench asks each question once per rotation of
its options) -> the field's prompt (`lavis/processors/benchmark_prompts.py`) in the model's chat
template -> the task's `answer`: batched greedy generation with left padding (SEED-Bench, by
default: its options ranked by the likelihood of their text) -> the task's parser -> one record
per question -> the benchmark's score (`lavis/tasks/scoring/`).

Determinism across ranks: the questions still to answer are cut into batches of
`batch_size` in benchmark order *before* they are dealt to ranks (batch b to rank b % N), so
each batch is padded and generated exactly as on one process: 1 and N ranks give the same
predictions.  Each rank appends its records to `predictions.rank<R>.jsonl` batch by batch;
rank 0 merges them (with the records already there, for `resume`) into `predictions.jsonl`
in benchmark order, scores and writes `results.json`.
"""

import json
import logging
import os

import torch
from torch.utils.data import DataLoader

from lavis.common import dist_utils
from lavis.common.registry import registry
from lavis.common.schema import SEED_BENCH_SCORINGS
from lavis.common.utils import atomic_open, is_out_of_space, out_of_space
from lavis.datasets.datasets.eval_dataset import EvalDataset
from lavis.processors.benchmark_prompts import IMAGE_PREFIX, benchmark_prompt
from lavis.processors.chat_format import IMAGE_SLOT, IMAGE_TOKEN
from lavis.tasks.base_task import BaseTask
from lavis.tasks.scoring import (
    caption_scores,
    choice_accuracy,
    circular_rotations,
    circular_scores,
    exact_match_scores,
    extract_choice,
    mme_scores,
    parse_pope,
    parse_yes_no,
    pope_scores,
    vqa_accuracy,
    vqa_scores,
)

PREDICTIONS = "predictions.jsonl"
RESULTS = "results.json"


def prompt_parts(prompt):
    """A prompt string -> chat parts: its `<ImageHere>` become image slots, the rest stays plain
    text (a benchmark question that happens to hold a special token cannot become one)."""
    pieces = prompt.split(IMAGE_TOKEN)
    parts = [pieces[0]]
    for piece in pieces[1:]:
        parts += [IMAGE_SLOT, piece]
    return [p for p in parts if p != ""]


class BenchmarkTask(BaseTask):
    """One benchmark: its prompt kind, how a reply is parsed, and how records are scored."""

    prompt_kind = "short_answer"
    title = ""

    @classmethod
    def from_run_config(cls, run_cfg=None):
        """The task as the run config (`run.*`) asks for it; None: its defaults."""
        return cls()

    def asks(self, items):
        """The questions put to the model: {question_id, image, prompt, answers, meta, ...}."""
        return [{**item, "prompt": benchmark_prompt(self.prompt_kind, item)} for item in items]

    def answer(self, model, batch, max_new_tokens, num_beams):
        """[(reply, extra record fields)] for a batch of asks: batched greedy generation."""
        return [(reply, {}) for reply in _generate(model, batch, max_new_tokens, num_beams)]

    def judge(self, reply, ask):
        """(parsed answer, correct) of a reply."""
        parsed = reply.strip()
        return parsed, parsed.lower() == (ask["answers"] or [""])[0].lower()

    def score(self, records):
        raise NotImplementedError

    def headline(self, scores):
        """[(name, value)] for the printed table."""
        return [(k, v) for k, v in scores.items() if isinstance(v, (int, float))]


@registry.register_task("mme")
class MMETask(BenchmarkTask):
    prompt_kind = "yes_no"
    title = "MME"

    def judge(self, reply, ask):
        parsed = parse_yes_no(reply)
        return parsed, parsed == ask["answers"][0]

    def score(self, records):
        return mme_scores(
            {
                "subtask": r["meta"]["subtask"],
                "image": r["meta"]["image_id"],
                "answer": r["answers"][0],
                "parsed": r["parsed"],
            }
            for r in records
        )

    def headline(self, scores):
        rows = [(f"{group} total", value) for group, value in scores["totals"].items()]
        for name, sub in scores["subtasks"].items():
            rows += [(f"{name} acc", sub["acc"]), (f"{name} acc+", sub["acc_plus"])]
        return rows


@registry.register_task("pope")
class POPETask(BenchmarkTask):
    title = "POPE"

    def judge(self, reply, ask):
        parsed = parse_pope(reply)
        return parsed, parsed == ask["answers"][0]

    def score(self, records):
        return pope_scores(
            {"answer": r["answers"][0], "parsed": r["parsed"], "category": r["meta"].get("category", "all")}
            for r in records
        )

    def headline(self, scores):
        rows = []
        for category, block in sorted(scores.get("category", {}).items()):
            rows += [(f"{category} {k}", block[k]) for k in ("accuracy", "precision", "recall", "f1", "yes_ratio")]
        return rows + [(f"all {k}", scores[k]) for k in ("accuracy", "f1", "yes_ratio")]


class MultipleChoiceTask(BenchmarkTask):
    """Options A-D in the prompt; the letter read from the reply by MMBench's heuristic rules."""

    prompt_kind = "multiple_choice"

    def judge(self, reply, ask):
        parsed = extract_choice(reply, ask["choices"])
        return parsed, parsed is not None and parsed == ask["answers"][0]


@registry.register_task("mmbench")
class MMBenchTask(MultipleChoiceTask):
    """Circular evaluation: each question once per rotation of its options; right only if all are."""

    title = "MMBench"

    def asks(self, items):
        out = []
        for item in items:
            for rotation in circular_rotations(item["choices"]):
                answers = [rotation["letter_map"][a] for a in item["answers"]]
                ask = {
                    **item,
                    "question_id": f"{item['question_id']}#r{rotation['rotation']}",
                    "choices": rotation["choices"],
                    "answers": answers,
                    "meta": {**item["meta"], "index": item["question_id"], "rotation": rotation["rotation"]},
                }
                out.append({**ask, "prompt": benchmark_prompt(self.prompt_kind, ask)})
        return out

    def score(self, records):
        return circular_scores(
            {
                "index": r["meta"]["index"],
                "rotation": r["meta"]["rotation"],
                "category": r["meta"].get("category", "all"),
                "correct": r["correct"],
            }
            for r in records
        )

    def headline(self, scores):
        rows = [("circular overall", scores["circular"]["overall"]), ("vanilla overall", scores["vanilla"]["overall"])]
        return rows + [(f"circular {c}", v) for c, v in sorted(scores["circular"]["category"].items())]


@registry.register_task("seed_bench")
class SEEDBenchTask(MultipleChoiceTask):
    """Multiple choice in the released option order, accuracy per evaluation dimension.

    Scored as `run.seed_bench_scoring` says.  likelihood (the default), as SEED-Bench's own
    evaluation ranks answers: the question alone (no options) after the image, each option's
    text as the reply, and the option whose reply tokens have the lowest mean cross-entropy
    (`model.reply_losses`; the image side runs once per question) is the prediction; it needs no
    instruction following.  generate: the options and LLaVA-1.5's "Answer with the option's
    letter" in the prompt, the letter read from the generated reply, as LLaVA-1.5 reports it.
    """

    title = "SEED-Bench"

    def __init__(self, scoring="likelihood"):
        if scoring not in SEED_BENCH_SCORINGS:
            raise ValueError(f"SEED-Bench scoring {scoring!r}: choose {' or '.join(SEED_BENCH_SCORINGS)}")
        self.scoring = scoring

    @classmethod
    def from_run_config(cls, run_cfg=None):
        return cls(run_cfg.seed_bench_scoring) if run_cfg is not None else cls()

    def asks(self, items):
        if self.scoring == "generate":
            return super().asks(items)
        return [{**item, "prompt": IMAGE_PREFIX + item["question"].strip()} for item in items]

    def answer(self, model, batch, max_new_tokens, num_beams):
        if self.scoring == "generate":
            return super().answer(model, batch, max_new_tokens, num_beams)
        items, images = batch["item"], batch["image"]
        features = None
        if images is not None:  # each question's image once, shared by its options' rows
            features = model.encode_queries(images.to(next(model.parameters()).device))
            counts = torch.tensor([len(item["choices"]) for item in items], device=features.device)
            features = features.repeat_interleave(counts, dim=0)
        conversations = [
            [{"from": "user", "value": item["prompt"]}, {"from": "assistant", "value": str(text)}]
            for item in items
            for text in item["choices"].values()
        ]
        losses = model.reply_losses({"image_features": features, "conversations": conversations}).tolist()
        out, start = [], 0
        for item in items:
            letters = list(item["choices"])
            mine = losses[start : start + len(letters)]
            start += len(letters)
            best = min(range(len(letters)), key=mine.__getitem__)  # ties: the first, as argsort's
            out.append((letters[best], {"option_losses": dict(zip(letters, (round(v, 4) for v in mine)))}))
        return out

    def score(self, records):
        return choice_accuracy(
            {"dimension": r["meta"].get("dimension", "all"), "correct": r["correct"]} for r in records
        )

    def headline(self, scores):
        return [("overall", scores["overall"])] + sorted(scores["dimension"].items())


@registry.register_task("vqa")
class VQATask(BenchmarkTask):
    """VQAv2 / OK-VQA: the official normalisation and min(matches / 3, 1) over annotator subsets."""

    title = "VQA"

    def judge(self, reply, ask):
        parsed = reply.strip()
        return parsed, vqa_accuracy(parsed, ask["answers"])

    def score(self, records):
        return vqa_scores(
            {"prediction": r["parsed"], "answers": r["answers"], **_kept(r["meta"], "answer_type")} for r in records
        )

    def headline(self, scores):
        return [("overall", scores["overall"])] + sorted(scores["answer_type"].items())


@registry.register_task("gqa")
class GQATask(BenchmarkTask):
    title = "GQA"

    def score(self, records):
        return exact_match_scores({"prediction": r["parsed"], "answer": r["answers"][0]} for r in records)


@registry.register_task("caption")
class CaptionTask(BenchmarkTask):
    """COCO-style captioning: BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap; no SPICE)."""

    prompt_kind = "caption"
    title = "Caption"

    def judge(self, reply, ask):
        return reply.strip(), None

    def score(self, records):
        records = list(records)
        return caption_scores(
            {r["question_id"]: r["parsed"] for r in records}, {r["question_id"]: r["answers"] for r in records}
        )


def benchmark_task_of(dataset_name, run_cfg=None):
    """The benchmark task that scores the registered dataset `dataset_name` as the run config
    asks, or None when it is not a benchmark (its builder names no `BENCHMARK_TASK`)."""
    task = getattr(registry.get_builder_class(dataset_name), "BENCHMARK_TASK", "")
    return registry.get_task_class(task).from_run_config(run_cfg) if task else None


def _kept(meta, *keys):
    return {k: meta[k] for k in keys if k in meta}


def _read_records(path):
    """Records of a predictions file; a line cut by an interrupted write (or otherwise not one of
    our records: not UTF-8, not JSON, no question id) is dropped, and its question asked again."""
    records = {}
    if not os.path.isfile(path):
        return records
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(record, dict) and isinstance(record.get("question_id"), str):
                records[record["question_id"]] = record
    return records


def _asked_as_now(records, asks):
    """The records whose prompt is the one `asks` puts to their question now: an earlier run with
    other settings (another `run.seed_bench_scoring`, other benchmark files) asked something else,
    and its answers must not be scored as this run's."""
    prompts = {ask["question_id"]: ask["prompt"] for ask in asks}
    return {qid: record for qid, record in records.items() if record.get("prompt") == prompts.get(qid)}


def _ends_with_newline(path):
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _part_files(output_dir):
    return sorted(
        os.path.join(output_dir, name)
        for name in os.listdir(output_dir)
        if name.startswith("predictions.rank") and name.endswith(".jsonl")
    )


def _generate(model, batch, max_new_tokens, num_beams):
    prompts = [model.prompt.generation_ids(prompt_parts(item["prompt"]))[0] for item in batch["item"]]
    images = batch["image"]
    if images is not None:
        images = images.to(next(model.parameters()).device)
    replies = model.generate_from_ids(
        prompts, images, None, max_new_tokens=max_new_tokens, do_sample=False, num_beams=num_beams
    )
    return [model.llm_tokenizer.decode(reply, skip_special_tokens=True) for reply in replies]


@torch.no_grad()
def evaluate_benchmark(
    task,
    model,
    dataset,
    output_dir,
    batch_size=8,
    max_new_tokens=32,
    num_beams=1,
    resume=False,
    num_workers=0,
    rank=None,
    world_size=None,
):
    """Answer every question of `dataset` (an EvalDataset), score on rank 0 and write
    `predictions.jsonl` + `results.json` under `output_dir`.  Returns the scores on rank 0 (None
    elsewhere).  `rank`/`world_size` default to the process group's; (0, 1) evaluates alone."""
    rank = dist_utils.get_rank() if rank is None else rank
    world_size = dist_utils.get_world_size() if world_size is None else world_size
    os.makedirs(output_dir, exist_ok=True)
    asks = task.asks(dataset.items)
    final = os.path.join(output_dir, PREDICTIONS)
    part = os.path.join(output_dir, f"predictions.rank{rank}.jsonl")
    done = {}
    if resume:
        done = _read_records(final)
        for path in _part_files(output_dir):  # what each rank of an interrupted run had written
            done.update(_read_records(path))
        kept = _asked_as_now(done, asks)
        if len(kept) < len(done):
            logging.info(
                "resume: %d earlier answers were to other prompts (other settings): asked again", len(done) - len(kept)
            )
        done = kept
    elif rank == 0:
        # a fresh start: no predictions of an earlier run survive
        for path in [*_part_files(output_dir), final, os.path.join(output_dir, RESULTS)]:
            if os.path.exists(path):
                os.remove(path)
    if world_size > 1:
        dist_utils.barrier()
    todo = [i for i, ask in enumerate(asks) if ask["question_id"] not in done]
    batches = [todo[s : s + batch_size] for s in range(0, len(todo), batch_size)]
    mine = batches[rank::world_size]
    if resume and done:
        logging.info("resume: %d of %d questions already answered", len(asks) - len(todo), len(asks))
    model.eval()
    loader = DataLoader(
        EvalDataset(asks, dataset.vis_processor),
        batch_sampler=mine,
        collate_fn=EvalDataset.collater,
        num_workers=num_workers,
    )
    needed = 1  # bytes of the batch being written, for the message of a full disk
    try:
        with open(part, "a", encoding="utf-8") as out:
            if out.tell() and not _ends_with_newline(part):
                out.write("\n")  # after a line cut by an interrupted write: start on a line of our own
            for batch in loader:
                lines = []
                for item, (reply, extra) in zip(batch["item"], task.answer(model, batch, max_new_tokens, num_beams)):
                    parsed, correct = task.judge(reply, item)
                    record = {
                        "question_id": item["question_id"],
                        "prompt": item["prompt"],
                        "prediction": reply,
                        "parsed": parsed,
                        "correct": correct,
                        "answers": item["answers"],
                        "meta": item["meta"],
                        **extra,
                    }
                    lines.append(json.dumps(record, ensure_ascii=False) + "\n")
                text = "".join(lines)
                needed = len(text.encode("utf-8"))
                out.write(text)
                out.flush()
    except OSError as err:  # what is written stays; a line cut short is dropped on --resume
        if not is_out_of_space(err):
            raise
        raise out_of_space(part, needed, "the answers written so far are kept: --resume asks only the rest") from None
    if world_size > 1:
        dist_utils.barrier()
    if rank != 0:
        return None
    parts = _part_files(output_dir)
    for path in parts:
        done.update(_asked_as_now(_read_records(path), asks))
    records = [done[ask["question_id"]] for ask in asks]
    with atomic_open(final, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    for path in parts:
        os.remove(path)
    scores = task.score(records)
    with atomic_open(os.path.join(output_dir, RESULTS), "w", encoding="utf-8") as handle:
        json.dump({"benchmark": task.title, "questions": len(records), "scores": scores}, handle, indent=1)
    return scores


def format_table(task, scores):
    """The printed table: one `name  value` line per headline figure."""
    rows = task.headline(scores)
    width = max((len(name) for name, _ in rows), default=0)
    lines = [f"{task.title}"] + [f"  {name:<{width}}  {value:8.2f}" for name, value in rows]
    return "\n".join(lines)
