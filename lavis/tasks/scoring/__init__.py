"""Benchmark scoring: pure functions from generated replies to the numbers the field reports.

Place in the flow: evaluation.  A task generates a reply per question, parses it with the
benchmark's official rule and scores the parsed records here; no model, no data loading.

    yes_no           MME (acc, acc+, perception / cognition totals) and POPE (precision, recall, F1)
    multiple_choice  option extraction (MMBench's heuristic, English and Chinese), MMBench's
                     circular evaluation, SEED-Bench's per-dimension accuracy
    vqa              the official VQA normalisation and 10-answer accuracy, normalised exact match (GQA)
    caption          BLEU / METEOR / ROUGE-L / CIDEr through pycocoevalcap (needs Java)
"""

from lavis.tasks.scoring.caption import caption_scores
from lavis.tasks.scoring.multiple_choice import choice_accuracy, circular_rotations, circular_scores, extract_choice
from lavis.tasks.scoring.vqa import exact_match_scores, normalize_answer, vqa_accuracy, vqa_scores
from lavis.tasks.scoring.yes_no import mme_scores, parse_pope, parse_yes_no, pope_scores

__all__ = [
    "caption_scores",
    "choice_accuracy",
    "circular_rotations",
    "circular_scores",
    "exact_match_scores",
    "extract_choice",
    "mme_scores",
    "normalize_answer",
    "parse_pope",
    "parse_yes_no",
    "pope_scores",
    "vqa_accuracy",
    "vqa_scores",
]
