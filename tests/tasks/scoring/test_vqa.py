import pytest

from lavis.tasks.scoring.vqa import exact_match_scores, normalize_answer, vqa_accuracy, vqa_scores


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("Two", "2"),  # number words -> digits
        ("none", "0"),
        ("a dog", "dog"),  # articles dropped
        ("The Two dogs!", "2 dogs"),
        ("dont", "don't"),  # contractions get their apostrophe
        ("isnt", "isn't"),
        ("it's", "it's"),  # ' is not punctuation in the official list
        ("its", "its"),  # and "its" is a word, not a contraction
        ("1,000", "1000"),  # a digit,digit comma: marks are deleted, not spaced
        ("yes, it is", "yes it is"),  # a mark next to a space is deleted
        ("red/blue", "red blue"),  # a mark between two words becomes a space
        ("dog.", "dog"),  # trailing period
        ("3.5", "3.5"),  # a period before a digit stays
        ("t-shirt", "t shirt"),
        ("\tcat\n", "cat"),  # newline / tab removal
    ],
)
def test_normalize_answer_official_edge_cases(answer, expected):
    assert normalize_answer(answer) == expected


def test_vqa_accuracy_leave_one_out():
    answers = ["dog", "dog"] + ["cat"] * 8
    # 10 subsets of 9: leaving out a "cat" (8 ways) keeps 2 "dog" -> min(2/3, 1) = 2/3;
    # leaving out a "dog" (2 ways) keeps 1 -> 1/3.  (8 * 2/3 + 2 * 1/3) / 10 = 6/10
    assert vqa_accuracy("dog", answers) == pytest.approx(0.6)
    # 1 of 10: 9 subsets keep it (1/3), 1 subset does not (0) -> 3/10
    assert vqa_accuracy("dog", ["dog"] + ["cat"] * 9) == pytest.approx(0.3)
    # 3 of 10: 7 subsets keep 3 (1), 3 keep 2 (2/3) -> (7 + 2) / 10
    assert vqa_accuracy("Three.", ["3"] * 3 + ["4"] * 7) == pytest.approx(0.9)
    # 4 of 10: every subset keeps at least 3 -> 1
    assert vqa_accuracy("a cat", ["cat"] * 4 + ["dog"] * 6) == pytest.approx(1.0)
    assert vqa_accuracy("bird", answers) == 0.0
    # both sides normalised: "2" among unanimous "two"s
    assert vqa_accuracy("2", ["Two"] * 10) == pytest.approx(1.0)


def test_vqa_accuracy_needs_several_answers():
    with pytest.raises(ValueError, match="exact_match_scores"):
        vqa_accuracy("dog", ["dog"])


def test_vqa_scores_per_answer_type():
    records = [
        {"prediction": "Yes", "answers": ["yes"] * 10, "answer_type": "yes/no"},  # 1.0
        {"prediction": "two", "answers": ["2", "2"] + ["3"] * 8, "answer_type": "number"},  # 0.6
        {"prediction": "blue", "answers": ["red"] * 10, "answer_type": "other"},  # 0.0
        {"prediction": "red", "answers": ["red"] * 10},  # 1.0, no type: overall only
    ]
    scores = vqa_scores(records)
    assert scores["overall"] == pytest.approx(100 * (1.0 + 0.6 + 0.0 + 1.0) / 4)  # 65 %
    assert scores["answer_type"] == pytest.approx({"yes/no": 100.0, "number": 60.0, "other": 0.0})
    assert scores["questions"] == 4


def test_exact_match_scores():
    records = [
        {"prediction": "The table.", "answer": "table", "group": "relation"},
        {"prediction": "Left", "answer": "left", "group": "relation"},
        {"prediction": "red", "answer": "blue", "group": "attribute"},
    ]
    assert exact_match_scores(records) == {"overall": pytest.approx(200 / 3), "questions": 3}
    scores = exact_match_scores(records, by="group")
    assert scores["group"] == {"attribute": 0.0, "relation": 100.0}
