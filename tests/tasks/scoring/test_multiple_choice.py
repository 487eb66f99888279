import pytest

from lavis.tasks.scoring.multiple_choice import choice_accuracy, circular_rotations, circular_scores, extract_choice

CHOICES = {"A": "a cat", "B": "a dog", "C": "a red circle", "D": "蓝色正方形"}


@pytest.mark.parametrize(
    "reply, expected",
    [
        # English
        ("B", "B"),
        ("A.", "A"),
        ("(B) a dog", "B"),
        ("Answer: C", "C"),
        ("**D**", "D"),
        ("The answer is C, not A.", "C"),  # two letters, one explicit statement
        ("There is a dog in the picture.", "B"),  # the option's text, alone
        ("A red circle.", "A"),  # MMBench's rule: a capital "A" is option A when it is the only letter
        # Chinese
        ("答案是C", "C"),
        ("选项B", "B"),
        ("B选项正确。", "B"),
        ("（Ｂ）", "B"),  # full-width brackets and letter
        ("答案：C，因为A不对。", "C"),
        ("蓝色正方形", "D"),
        ("图中是蓝色正方形。", "D"),
        # nothing, or ambiguous
        ("I think B or A.", None),
        ("B和C都对", None),
        ("a cat and a dog", None),  # two options' texts
        ("c", None),  # letters are capitals
        ("I don't know.", None),
        ("There is a dog in the picture, and it is sitting on a mat next to a sofa.", None),  # too long for text match
    ],
)
def test_extract_choice(reply, expected):
    assert extract_choice(reply, dict(CHOICES)) == expected


def test_circular_rotations():
    choices = {"A": "cat", "B": "dog", "C": "bird"}
    rotations = circular_rotations(choices)
    assert [r["rotation"] for r in rotations] == [0, 1, 2]
    assert rotations[0]["choices"] == choices
    assert rotations[1] == {
        "rotation": 1,
        "choices": {"A": "dog", "B": "bird", "C": "cat"},
        "letter_map": {"A": "C", "B": "A", "C": "B"},
    }
    assert rotations[2]["choices"] == {"A": "bird", "B": "cat", "C": "dog"}
    for rotation in rotations:  # the mapped letter holds the same text
        for letter, text in choices.items():
            assert rotation["choices"][rotation["letter_map"][letter]] == text
    # each text stands under each letter exactly once
    assert {r["choices"]["A"] for r in rotations} == {"cat", "dog", "bird"}


def _rec(index, rotation, category, correct):
    return {"index": index, "rotation": rotation, "category": category, "correct": correct}


def test_circular_scores_one_failed_rotation():
    records = [_rec(1, k, "attribute", True) for k in range(4)]
    records += [_rec(2, 0, "attribute", True), _rec(2, 1, "attribute", True), _rec(2, 2, "attribute", False)]
    records += [_rec(2, 3, "attribute", True)]
    records += [_rec(3, 0, "spatial", False), _rec(3, 1, "spatial", True)]
    scores = circular_scores(records)
    # circular: q1 right, q2 wrong (rotation 2), q3 wrong -> 1/3; attribute 1/2, spatial 0/1
    assert scores["circular"]["overall"] == pytest.approx(100 / 3)
    assert scores["circular"]["category"] == {"attribute": 50.0, "spatial": 0.0}
    # vanilla (rotation 0 only): q1 right, q2 right, q3 wrong -> 2/3
    assert scores["vanilla"]["overall"] == pytest.approx(200 / 3)
    assert scores["vanilla"]["category"] == {"attribute": 100.0, "spatial": 0.0}
    assert scores["questions"] == 3


def test_circular_evaluation_end_to_end():
    # question 1's truth is B ("dog"); a model that always names the text "dog" passes every rotation,
    # a model that always says "B" passes only the rotation where the truth stays at B
    choices, truth = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}, "B"
    for reply, circular, vanilla in (("It is a dog.", 100.0, 100.0), ("B", 0.0, 100.0)):
        records = []
        for rotation in circular_rotations(choices):
            picked = extract_choice(reply, rotation["choices"])
            correct = picked == rotation["letter_map"][truth]
            records.append(_rec(1, rotation["rotation"], "animals", correct))
        scores = circular_scores(records)
        assert (scores["circular"]["overall"], scores["vanilla"]["overall"]) == (circular, vanilla)


def test_circular_scores_checks_its_records():
    with pytest.raises(ValueError, match="no rotation 0"):
        circular_scores([_rec(1, 1, "x", True)])
    with pytest.raises(ValueError, match="rotation 1 given twice"):
        circular_scores([_rec(1, 0, "x", True), _rec(1, 1, "x", True), _rec(1, 1, "x", False)])
    with pytest.raises(ValueError, match="different categories"):
        circular_scores([_rec(1, 0, "x", True), _rec(1, 1, "y", True)])


def test_choice_accuracy_per_dimension():
    records = [
        {"dimension": "Scene Understanding", "correct": True},
        {"dimension": "Scene Understanding", "correct": True},
        {"dimension": "Scene Understanding", "correct": False},
        {"dimension": "Instances Counting", "correct": True},
    ]
    scores = choice_accuracy(records)
    # overall weighs every question: 3/4 = 75 % (not the mean of the dimensions, 83.3 %)
    assert scores["overall"] == 75.0
    assert scores["dimension"]["Scene Understanding"] == pytest.approx(200 / 3)
    assert scores["dimension"]["Instances Counting"] == 100.0
    assert scores["questions"] == 4
    single = choice_accuracy([{"type": 1, "correct": False}], by="type")
    assert single == {"overall": 0.0, "type": {1: 0.0}, "questions": 1}
