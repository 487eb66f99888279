"""Multiple-choice benchmarks: which option a reply picks, MMBench's circular evaluation and
SEED-Bench's per-dimension accuracy.

Place in the flow: evaluation.  The task asks each question (once per rotation of its options
for MMBench, see `circular_rotations`), reads the chosen letter out of the reply
(`extract_choice`), marks the record right or wrong and scores the records (`circular_scores`,
`choice_accuracy`).  Every function returns plain JSON-serialisable values; rates are in %.
"""

import re
import unicodedata
from collections import defaultdict

from lavis.tasks.scoring.averages import percent, percent_by

# The heuristic stage of MMBench's answer extraction, as VLMEvalKit writes it
# (vlmeval/utils/matching_util.py: can_infer = can_infer_option, then can_infer_text); its GPT
# fallback is not used (no network).  Its rules, followed here:
#   option: these characters become spaces, the reply is split on whitespace, and the letters of
#     the options that appear as whole tokens are counted (case matters): exactly one -> it;
#   text: otherwise, if the lowercased reply is at most twice as long as all option texts
#     together, the one option whose lowercased text is inside it -> that option.
# Our additions, for Chinese and for "the answer is C, not A": the reply is NFKC-normalised first
# (full-width "（Ｂ）" -> "(B)"), every non-ASCII character also separates tokens (so "答案是C",
# "选项B", "B选项" give the token "B"), and when several letters are present one explicit
# statement ("answer is C", "答案是C" / "答案为C" / "答案：C", as VLMEvalKit's newer
# verbose-answer rule) decides.  Empty option texts never match in the text stage.
_SEPARATORS = ".()[],:;!*#{}"
_EXPLICIT = re.compile(
    r"(?i:(?:correct\s+)?answer\s+is)[\s:]*\**\s*([A-Z])\b"  # "The (correct) answer is: **C**"
    r"|答案\s*(?:是|为|:)\s*\**\s*([A-Z])"  # "答案是C", "答案为C", "答案：C" (no \b: 因 after C is a word character)
)


def _tokens(text):
    for char in _SEPARATORS:
        text = text.replace(char, " ")
    return "".join(char if char.isascii() else " " for char in text).split()


def extract_choice(text, choices):
    """The letter of the option a free-text reply picks, or None (none, or ambiguous).

    text: the reply ("B", "(B) a dog", "Answer: C", "答案是C", "选项B", or just the option's text);
    choices: {letter: option text}, e.g. {"A": "a cat", "B": "a dog"}.
    Two option letters in the reply with no single explicit "answer is X" -> None.  A capital "A"
    used as an article counts as option A, as in MMBench ("A dog." -> "A" when it is the only
    letter present).
    """
    text = unicodedata.normalize("NFKC", str(text))
    tokens = set(_tokens(text))
    found = [letter for letter in choices if letter in tokens]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        stated = {a or b for a, b in _EXPLICIT.findall(text)} & set(choices)
        if len(stated) == 1:
            return stated.pop()
    lowered = text.lower()
    if len(lowered) > 2 * sum(len(str(option)) for option in choices.values()):
        return None
    matches = [letter for letter, option in choices.items() if str(option) and str(option).lower() in lowered]
    return matches[0] if len(matches) == 1 else None


def circular_rotations(choices):
    """MMBench's circular evaluation: the N rotations of N options.

    choices: {letter: option text} with letters A, B, C, ... in order.  Rotation k puts the
    option that was k places later under each letter (letters stay A.., texts move: rotation 1
    of {A: a, B: b, C: c} is {A: b, B: c, C: a}).  Returns [{"rotation": k, "choices": {...},
    "letter_map": {original letter: its letter in this rotation}}], rotation 0 first (the
    original order); move the ground truth with `letter_map[answer]`.
    """
    letters = sorted(choices)
    n = len(letters)
    rotations = []
    for k in range(n):
        rotated = {letters[i]: choices[letters[(i + k) % n]] for i in range(n)}
        letter_map = {letters[j]: letters[(j - k) % n] for j in range(n)}
        rotations.append({"rotation": k, "choices": rotated, "letter_map": letter_map})
    return rotations


def circular_scores(records):
    """MMBench accuracy, circular and first-pass only.

    records: dicts {"index" (the original question's id), "rotation" (int, 0 = original order),
    "category", "correct" (bool)}, one per rotation asked.  Circular: a question is right only
    if every one of its rotations is.  Vanilla: rotation 0 alone (what a single pass scores).
    Returns {"circular": {"overall", "category": {name: %}}, "vanilla": {"overall",
    "category": {...}}, "questions"} in %.
    """
    questions = defaultdict(dict)
    for record in records:
        rotations = questions[record["index"]]
        if record["rotation"] in rotations:
            raise ValueError(f"question {record['index']!r}: rotation {record['rotation']} given twice")
        rotations[record["rotation"]] = record

    circular, vanilla = [], []
    for index, rotations in questions.items():
        if 0 not in rotations:
            raise ValueError(f"question {index!r}: no rotation 0 (the original order) among {sorted(rotations)}")
        categories = {record["category"] for record in rotations.values()}
        if len(categories) != 1:
            raise ValueError(f"question {index!r}: its rotations name different categories {sorted(categories)}")
        category = categories.pop()
        circular.append({"category": category, "correct": all(r["correct"] for r in rotations.values())})
        vanilla.append({"category": category, "correct": rotations[0]["correct"]})

    def block(rows):
        return {
            "overall": percent(row["correct"] for row in rows),
            "category": percent_by(rows, lambda row: row["correct"], "category"),
        }

    return {"circular": block(circular), "vanilla": block(vanilla), "questions": len(questions)}


def choice_accuracy(records, by="dimension"):
    """SEED-Bench-style multiple-choice accuracy: % of records right overall (every question
    weighs the same) and per value of `by` (SEED-Bench's evaluation dimensions).

    records: dicts {"correct" (bool), by: group}.  Returns {"overall", by: {group: %}, "questions"}.
    """
    records = list(records)
    return {
        "overall": percent(record["correct"] for record in records),
        by: percent_by(records, lambda record: record["correct"], by),
        "questions": len(records),
    }
