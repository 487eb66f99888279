"""Yes/no benchmarks: reading "yes" or "no" out of a reply, and the MME and POPE scores.

Place in the flow: evaluation.  The task generates a reply per question, parses it here
(`parse_yes_no` for MME, `parse_pope` for POPE) and scores the parsed records (`mme_scores`,
`pope_scores`).  Every function returns plain JSON-serialisable values; rates are in %.
"""

from collections import defaultdict

from lavis.tasks.scoring.averages import percent

# MME's subtasks as its official eval_tool/calculation.py names and groups them.
MME_PERCEPTION = (
    "existence",
    "count",
    "position",
    "color",
    "posters",
    "celebrity",
    "scene",
    "landmark",
    "artwork",
    "OCR",
)
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")

# Chinese replies (our synthetic sets are bilingual; MME itself is English): the first of these
# characters within the reply's first 4 characters decides, so that "不是" / "不对" / "没有" read
# as no and "是的" / "对" / "有" as yes.
_CHINESE_YES = frozenset("是对有")
_CHINESE_NO = frozenset("否不没")
_HEAD = 4  # how many leading characters MME's rule looks at


def parse_yes_no(text):
    """'yes', 'no' or 'other' for a reply, by MME's rule, then the Chinese one above.

    MME: lowercase (and strip); the whole reply "yes" or "no" is that answer; otherwise "yes"
    within the first 4 characters means yes, else "no" within them means no (so "Not really" is
    no), else other.  Only a reply that rule calls other is looked at for Chinese.
    """
    # follows MME's official eval_tool/calculation.py (parse_pred_ans)
    text = str(text).lower().strip()
    if text in ("yes", "no"):
        return text
    head = text[:_HEAD]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    for char in head:
        if char in _CHINESE_YES:
            return "yes"
        if char in _CHINESE_NO:
            return "no"
    return "other"


def parse_pope(text):
    """'yes' or 'no' for a reply, by POPE's rule: only the first sentence (up to the first '.')
    counts; with commas removed and split on spaces, a word "No", "no" or "not" means no, anything
    else yes (there is no 'other').  Case matters, as in the official rule ("NO" is yes)."""
    # follows LLaVA's llava/eval/eval_pope.py (the reply is stripped first, as LLaVA's answer files are)
    sentence = str(text).strip().split(".")[0]
    words = sentence.replace(",", "").split(" ")
    return "no" if {"No", "no", "not"} & set(words) else "yes"


def _check_yes_no(record, allowed, key):
    value = record[key]
    if value not in allowed:
        raise ValueError(f"{key}={value!r} in {record!r}: expected one of {sorted(allowed)}")
    return value


def mme_scores(records):
    """MME's scores from parsed records.

    records: dicts {"subtask", "image", "answer" (ground truth "yes"/"no", any case),
    "parsed" ("yes"/"no"/"other", from `parse_yes_no`)}, one per question (MME asks 2 per image).

    Per subtask, as the official tool computes them: acc = % of questions right ("other" is
    wrong), acc_plus = % of images whose questions are all right, score = acc + acc_plus (out of
    200).  Totals: the sum of the subtask scores per group (perception: MME's 10 subtasks, out of
    2000; cognition: its 4, out of 800; other: any subtask outside both, e.g. our synthetic ones).
    A group is in "totals" only when one of its subtasks is present, and "missing" lists the
    official subtasks of a present group that were not scored (its total is then partial).

    Returns {"subtasks": {name: {"acc", "acc_plus", "score", "questions", "images",
    "other_answers"}}, "totals": {group: score}, "missing": {group: [subtask, ...]}}.
    """
    by_subtask = defaultdict(list)
    for record in records:
        by_subtask[record["subtask"]].append(record)

    subtasks = {}
    for name in sorted(by_subtask):
        rows = by_subtask[name]
        right = []
        image_right = {}  # image -> all its questions right so far
        for record in rows:
            answer = _check_yes_no({**record, "answer": str(record["answer"]).lower()}, {"yes", "no"}, "answer")
            parsed = _check_yes_no(record, {"yes", "no", "other"}, "parsed")
            right.append(parsed == answer)
            image_right[record["image"]] = image_right.get(record["image"], True) and parsed == answer
        acc, acc_plus = percent(right), percent(image_right.values())
        subtasks[name] = {
            "acc": acc,
            "acc_plus": acc_plus,
            "score": acc + acc_plus,
            "questions": len(rows),
            "images": len(image_right),
            "other_answers": sum(record["parsed"] == "other" for record in rows),
        }

    groups = {"perception": MME_PERCEPTION, "cognition": MME_COGNITION}
    totals, missing = {}, {}
    for group, names in groups.items():
        present = [name for name in names if name in subtasks]
        if present:
            totals[group] = sum(subtasks[name]["score"] for name in present)
            absent = [name for name in names if name not in subtasks]
            if absent:
                missing[group] = absent
    official = set(MME_PERCEPTION) | set(MME_COGNITION)
    others = [name for name in subtasks if name not in official]
    if others:
        totals["other"] = sum(subtasks[name]["score"] for name in others)
    return {"subtasks": subtasks, "totals": totals, "missing": missing}


def _pope_block(rows):
    tp = fp = tn = fn = 0
    for record in rows:
        answer = _check_yes_no({**record, "answer": str(record["answer"]).lower()}, {"yes", "no"}, "answer")
        parsed = _check_yes_no(record, {"yes", "no"}, "parsed")
        if parsed == "yes":
            tp, fp = tp + (answer == "yes"), fp + (answer == "no")
        else:
            tn, fn = tn + (answer == "no"), fn + (answer == "yes")
    total = tp + fp + tn + fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": 100.0 * (tp + tn) / total if total else 0.0,
        "precision": 100.0 * precision,
        "recall": 100.0 * recall,
        "f1": 100.0 * f1,
        "yes_ratio": 100.0 * (tp + fp) / total if total else 0.0,
        "TP": tp,
        "FP": fp,
        "TN": tn,
        "FN": fn,
        "questions": total,
    }


def pope_scores(records):
    """POPE's scores, yes the positive class, as LLaVA's eval_pope.py computes them (in %;
    a ratio whose denominator is 0 is 0.0 instead of an error).

    records: dicts {"answer" (ground truth "yes"/"no"), "parsed" ("yes"/"no", from `parse_pope`),
    optional "category" (POPE's random / popular / adversarial split)}.

    Returns {"accuracy", "precision", "recall", "f1", "yes_ratio", "TP", "FP", "TN", "FN",
    "questions"} over all records, plus "category": {name: the same} when records have one
    (LLaVA reports each POPE split on its own).
    """
    records = list(records)
    scores = _pope_block(records)
    by_category = defaultdict(list)
    for record in records:
        if "category" in record:
            by_category[record["category"]].append(record)
    if by_category:
        scores["category"] = {name: _pope_block(by_category[name]) for name in sorted(by_category)}
    return scores
