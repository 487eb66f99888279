"""Open-ended VQA: the official VQA answer normalisation and accuracy, and normalised exact match
(GQA).

Place in the flow: evaluation.  The task generates a short answer per question and scores the
records here: `vqa_scores` for VQAv2-style data (10 human answers per question), and
`exact_match_scores` for one ground-truth answer per question (GQA).  Rates are in %.

The normalisation follows the VQA API's `vqaEval.py` (GT-Vision-Lab/VQA, the evaluation LAVIS
and LLaVA use): newlines and tabs become spaces; punctuation is removed, or replaced by a space
where it joins two words; a period not followed by a digit is removed ("3.5" keeps its own);
lowercase; number words zero..ten (and "none") become digits; the articles a / an / the are
dropped; contractions written without the apostrophe get it back ("dont" -> "don't").  The
tables below are the official rules (data, not code we can import), in our own layout.
"""

import re

from lavis.tasks.scoring.averages import percent, percent_by

# Written "missing apostrophe=official form".  Two official quirks are kept as they are: the keys
# with capitals ("Im", "Ive", ...) never match, since words are lowercased first, and
# "somebody'd" maps to "somebodyd".
_CONTRACTIONS = dict(
    pair.split("=", 1)
    for pair in """
    aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've
    couldnt've=couldn't've didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've
    hadn'tve=hadn't've hasnt=hasn't havent=haven't hed=he'd hed've=he'd've he'dve=he'd've hes=he's
    howd=how'd howll=how'll hows=how's Id've=I'd've I'dve=I'd've Im=I'm Ive=I've isnt=isn't itd=it'd
    itd've=it'd've it'dve=it'd've itll=it'll let's=let's maam=ma'am mightnt=mightn't
    mightnt've=mightn't've mightn'tve=mightn't've mightve=might've mustnt=mustn't mustve=must've
    neednt=needn't notve=not've oclock=o'clock oughtnt=oughtn't ow's'at='ow's'at 'ows'at='ow's'at
    'ow'sat='ow's'at shant=shan't shed've=she'd've she'dve=she'd've she's=she's shouldve=should've
    shouldnt=shouldn't shouldnt've=shouldn't've shouldn'tve=shouldn't've somebody'd=somebodyd
    somebodyd've=somebody'd've somebody'dve=somebody'd've somebodyll=somebody'll somebodys=somebody's
    someoned=someone'd someoned've=someone'd've someone'dve=someone'd've someonell=someone'll
    someones=someone's somethingd=something'd somethingd've=something'd've something'dve=something'd've
    somethingll=something'll thats=that's thered=there'd thered've=there'd've there'dve=there'd've
    therere=there're theres=there's theyd=they'd theyd've=they'd've they'dve=they'd've theyll=they'll
    theyre=they're theyve=they've twas='twas wasnt=wasn't wed've=we'd've we'dve=we'd've weve=we've
    werent=weren't whatll=what'll whatre=what're whats=what's whatve=what've whens=when's whered=where'd
    wheres=where's whereve=where've whod=who'd whod've=who'd've who'dve=who'd've wholl=who'll whos=who's
    whove=who've whyll=why'll whyre=why're whys=why's wont=won't wouldve=would've wouldnt=wouldn't
    wouldnt've=wouldn't've wouldn'tve=wouldn't've yall=y'all yall'll=y'all'll y'allll=y'all'll
    yall'd've=y'all'd've y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd youd've=you'd've
    you'dve=you'd've youll=you'll youre=you're youve=you've
    """.split()
)
_NUMBER_WORDS = "zero one two three four five six seven eight nine ten".split()
_NUMBERS = {word: str(value) for value, word in enumerate(_NUMBER_WORDS)} | {"none": "0"}
_ARTICLES = frozenset(("a", "an", "the"))
# The official list: note that ' and : are not in it ("it's" stays "it's").
_PUNCTUATION = tuple(';/[]"{}()=+\\_-><@`,?!')
# The official pattern's look-behind is misspelt ("(?!<=\d)"), so in effect a period is removed
# whenever no digit follows it; this is that effect (the official call also stops after 32
# replacements, a slip that no short answer reaches).
_PERIOD = re.compile(r"\.(?!\d)")
_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")


def _strip_punctuation(text):
    # A mark next to a space, or any mark at all once the text has a digit,digit comma ("1,000"),
    # is deleted; elsewhere it is replaced by a space ("red/blue" -> "red blue").  The test is made
    # on the text as it came in, for every mark, as the official loop does.
    delete_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        if delete_all or mark + " " in text or " " + mark in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD.sub("", out)


def _digits_and_articles(text):
    words = [_NUMBERS.get(word, word) for word in text.lower().split()]
    words = [word for word in words if word not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(word, word) for word in words)


def normalize_answer(text):
    """An answer as the official VQA evaluation compares it ("Two dogs." -> "2 dogs")."""
    text = str(text).replace("\n", " ").replace("\t", " ").strip()
    return _digits_and_articles(_strip_punctuation(text))


def vqa_accuracy(prediction, gt_answers):
    """The official VQA accuracy of one prediction (0..1) against its human answers (10 in VQAv2).

    For each answer left out in turn, min(1, matches among the others / 3); the mean of those.
    A prediction 3 or more annotators gave scores 1 ("correct if at least 3 humans said it").
    Both sides are normalised (`normalize_answer`).  The official script normalises only when the
    human answers disagree, comparing the raw strings when all agree; normalising both sides always
    gives the same result whenever those unanimous answers are already in normal form, as the
    prediction files the field submits are (LLaVA normalises its predictions before submitting).
    """
    if len(gt_answers) < 2:
        raise ValueError(
            f"VQA accuracy leaves one of several human answers out; got {len(gt_answers)} "
            "(use exact_match_scores for one answer per question)"
        )
    predicted = normalize_answer(prediction)
    truths = [normalize_answer(answer) for answer in gt_answers]
    total = 0.0
    for left_out in range(len(truths)):
        matches = sum(1 for i, truth in enumerate(truths) if i != left_out and truth == predicted)
        total += min(1.0, matches / 3)
    return total / len(truths)


def vqa_scores(records):
    """VQA accuracy in %, overall and per answer type ("yes/no", "number", "other" in VQAv2).

    records: dicts {"prediction", "answers" (the human answers), optional "answer_type"}.
    Returns {"overall", "answer_type": {type: %} (records that have one), "questions"}.
    """
    records = [{**record, "_accuracy": vqa_accuracy(record["prediction"], record["answers"])} for record in records]
    return {
        "overall": percent(record["_accuracy"] for record in records),
        "answer_type": percent_by(records, lambda record: record["_accuracy"], "answer_type"),
        "questions": len(records),
    }


def exact_match_scores(records, by=None):
    """% of records whose normalised prediction equals the normalised answer (GQA's metric), overall
    and, with `by`, per value of that key.

    records: dicts {"prediction", "answer"} (plus the `by` key).  The normalisation is
    `normalize_answer`, as LAVIS's GQA evaluation does; LLaVA's GQA conversion only lowercases
    and strips trailing periods before GQA's exact string comparison, which scores the same or
    (rarely) lower.
    Returns {"overall", by: {group: %} (when `by` is given), "questions"}.
    """
    records = [
        {**record, "_correct": normalize_answer(record["prediction"]) == normalize_answer(record["answer"])}
        for record in records
    ]
    scores = {"overall": percent(record["_correct"] for record in records), "questions": len(records)}
    if by is not None:
        scores[by] = percent_by(records, lambda record: record["_correct"], by)
    return scores
