import json

import pytest

from lavis.tasks.scoring.yes_no import MME_COGNITION, MME_PERCEPTION, mme_scores, parse_pope, parse_yes_no, pope_scores


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("yes", "yes"),
        ("No", "no"),
        ("  Yes, there is a dog.\n", "yes"),
        ("No.", "no"),
        ("Not really.", "no"),  # "no" within the first 4 characters
        ("Nope", "no"),
        ("There is a dog.", "other"),
        ("The answer is yes.", "other"),  # MME only looks at the first 4 characters
        ("I know it", "other"),
        ("是的。", "yes"),
        ("对，是圆形。", "yes"),
        ("不是。", "no"),  # the first marker, 不, decides
        ("否", "no"),
        ("没有。", "no"),
        ("图中有一个圆形。", "yes"),
        ("图中没有圆形。", "no"),
        ("一个圆形。", "other"),
    ],
)
def test_parse_yes_no(reply, expected):
    assert parse_yes_no(reply) == expected


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("Yes, there is a dog in the image.", "yes"),
        ("No, there is no dog.", "no"),
        ("No", "no"),
        ("There is no dog in the image.", "no"),
        ("Yes, but it is not a cat.", "no"),  # "not" anywhere in the first sentence
        ("Yes. There is no cat.", "yes"),  # only the first sentence counts
        ("NO", "yes"),  # the official word test is case-sensitive
        ("Nope", "yes"),
        ("  No, it is not.  ", "no"),
    ],
)
def test_parse_pope(reply, expected):
    assert parse_pope(reply) == expected


def _mme(subtask, image, answer, parsed):
    return {"subtask": subtask, "image": image, "answer": answer, "parsed": parsed}


def test_mme_scores_three_images():
    records = [
        # existence, image 1: both right; image 2: one right, one "other" (wrong)
        _mme("existence", "0001.png", "Yes", "yes"),
        _mme("existence", "0001.png", "No", "no"),
        _mme("existence", "0002.png", "yes", "yes"),
        _mme("existence", "0002.png", "no", "other"),
        # code_reasoning, one image (same file name as above: kept apart by subtask): one right
        _mme("code_reasoning", "0001.png", "yes", "no"),
        _mme("code_reasoning", "0001.png", "no", "no"),
    ]
    scores = mme_scores(records)
    # existence: acc = 3/4 = 75 %, acc+ = 1/2 images = 50 %, score = 125
    assert scores["subtasks"]["existence"] == {
        "acc": 75.0,
        "acc_plus": 50.0,
        "score": 125.0,
        "questions": 4,
        "images": 2,
        "other_answers": 1,
    }
    # code_reasoning: acc = 1/2 = 50 %, acc+ = 0/1 = 0 %, score = 50
    assert scores["subtasks"]["code_reasoning"] == {
        "acc": 50.0,
        "acc_plus": 0.0,
        "score": 50.0,
        "questions": 2,
        "images": 1,
        "other_answers": 0,
    }
    assert scores["totals"] == {"perception": 125.0, "cognition": 50.0}
    assert scores["missing"]["perception"] == [name for name in MME_PERCEPTION if name != "existence"]
    assert scores["missing"]["cognition"] == [name for name in MME_COGNITION if name != "code_reasoning"]
    assert json.loads(json.dumps(scores)) == scores


def test_mme_scores_other_subtasks_and_full_groups():
    # every official subtask with one image answered fully right, plus a synthetic one half right
    records = []
    for name in MME_PERCEPTION + MME_COGNITION:
        records += [_mme(name, "a.png", "yes", "yes"), _mme(name, "a.png", "no", "no")]
    records += [_mme("shapes_colour", "s.png", "yes", "yes"), _mme("shapes_colour", "s.png", "no", "yes")]
    scores = mme_scores(records)
    assert scores["totals"] == {"perception": 10 * 200.0, "cognition": 4 * 200.0, "other": 50.0 + 0.0}
    assert scores["missing"] == {}


def test_mme_scores_rejects_unparsed_replies():
    with pytest.raises(ValueError, match="parsed='Yes, there is'"):
        mme_scores([_mme("existence", "a.png", "yes", "Yes, there is")])


def _pope(answer, parsed, category=None):
    record = {"answer": answer, "parsed": parsed}
    if category:
        record["category"] = category
    return record


def test_pope_scores_from_a_hand_counted_confusion_matrix():
    # TP = 3, FP = 1, TN = 4, FN = 2 (10 questions)
    records = (
        [_pope("yes", "yes", "random")] * 3
        + [_pope("no", "yes", "random")]
        + [_pope("no", "no", "popular")] * 4
        + [_pope("yes", "no", "popular")] * 2
    )
    scores = pope_scores(records)
    assert (scores["TP"], scores["FP"], scores["TN"], scores["FN"], scores["questions"]) == (3, 1, 4, 2, 10)
    assert scores["accuracy"] == pytest.approx(70.0)  # (3 + 4) / 10
    assert scores["precision"] == pytest.approx(75.0)  # 3 / (3 + 1)
    assert scores["recall"] == pytest.approx(60.0)  # 3 / (3 + 2)
    assert scores["f1"] == pytest.approx(100 * 2 * 0.75 * 0.6 / (0.75 + 0.6))  # 66.67
    assert scores["f1"] == pytest.approx(66.6667, abs=1e-3)
    assert scores["yes_ratio"] == pytest.approx(40.0)  # 4 "yes" predictions / 10
    # per split: random has TP 3, FP 1; popular has TN 4, FN 2
    random, popular = scores["category"]["random"], scores["category"]["popular"]
    assert (random["precision"], random["recall"], random["accuracy"]) == (75.0, 100.0, 75.0)
    assert (popular["precision"], popular["recall"], popular["f1"], popular["yes_ratio"]) == (0.0, 0.0, 0.0, 0.0)
    assert popular["accuracy"] == pytest.approx(100 * 4 / 6)


def test_pope_scores_parses_with_the_official_rule_end_to_end():
    replies = ["Yes, there is.", "No, there is not.", "There is no cat.", "Yes."]
    truth = ["yes", "no", "yes", "no"]
    scores = pope_scores([_pope(t, parse_pope(r)) for t, r in zip(truth, replies)])
    # predictions yes, no, no, yes -> TP 1, TN 1, FN 1, FP 1
    assert (scores["TP"], scores["FP"], scores["TN"], scores["FN"]) == (1, 1, 1, 1)
    assert "category" not in scores


def test_pope_scores_needs_a_yes_or_no():
    with pytest.raises(ValueError, match="parsed='other'"):
        pope_scores([_pope("yes", "other")])
