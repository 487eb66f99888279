import math
import os
import shutil
import subprocess
import sys

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from lavis.common.errors import UserError
from lavis.tasks.scoring import caption
from lavis.tasks.scoring.caption import METRICS, caption_scores

needs_java = pytest.mark.skipif(
    shutil.which("java") is None, reason="java is not installed (the PTB tokenizer and METEOR run it)"
)

PREDICTIONS = {1: "A red square.", 2: "a blue circle", 3: "A green triangle on grey."}
REFERENCES = {
    1: ["A red circle."],
    2: ["A blue circle!", "a blue round shape"],
    3: ["a green triangle on a grey background", "A small green triangle."],
}


@pytest.fixture(scope="module")
def scores():
    return caption_scores(PREDICTIONS, REFERENCES)


@needs_java
def test_caption_scores_equal_pycocoevalcap_on_the_same_tokens(scores):
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in refs] for k, refs in REFERENCES.items()})
    res = tokenizer.tokenize({k: [{"caption": PREDICTIONS[k]}] for k in REFERENCES})
    assert res[1] == ["a red square"] and gts[2] == ["a blue circle", "a blue round shape"]
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    expected = dict(zip(METRICS[:4], bleu))
    expected["METEOR"] = Meteor().compute_score(gts, res)[0]
    expected["ROUGE_L"] = Rouge().compute_score(gts, res)[0]
    expected["CIDEr"] = Cider().compute_score(gts, res)[0]
    assert list(scores) == list(METRICS)
    assert scores == pytest.approx(expected, rel=1e-9)
    assert all(isinstance(value, float) for value in scores.values())
    assert 0 < scores["METEOR"] < 1 and scores["CIDEr"] > 0


class _NoMeteor:  # METEOR's jar takes seconds to start; this test checks BLEU and ROUGE-L only
    def compute_score(self, gts, res):
        return 0.0, []


@needs_java
def test_bleu_by_hand(monkeypatch):
    monkeypatch.setattr("pycocoevalcap.meteor.meteor.Meteor", _NoMeteor)  # caption_scores imports it when called
    # tokenised: "a red square" vs "a red circle"; "a blue circle" vs "a blue circle" (lengths equal: no
    # brevity penalty).  Unigrams right 2 + 3 of 6; bigrams right 1 + 2 of 4.
    scores = caption_scores({1: "A red square.", 2: "a blue circle"}, {1: ["A red circle."], 2: ["A blue circle!"]})
    assert scores["Bleu_1"] == pytest.approx(5 / 6, rel=1e-6)
    assert scores["Bleu_2"] == pytest.approx(math.sqrt(5 / 6 * 3 / 4), rel=1e-6)
    # ROUGE-L (beta 1.2): image 1 LCS 2 of 3 words -> 2/3; image 2 -> 1; mean 5/6
    assert scores["ROUGE_L"] == pytest.approx(5 / 6, rel=1e-6)


def test_caption_scores_without_java_is_a_user_error(monkeypatch):
    monkeypatch.setattr(caption.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="default-jre-headless"):
        caption_scores({1: "a cat"}, {1: ["a cat"]})


def test_caption_scores_needs_the_same_images():
    with pytest.raises(ValueError, match="1 without a prediction, 0 without references"):
        caption_scores({1: "a cat"}, {1: ["a cat"], 2: ["a dog"]})
    with pytest.raises(ValueError, match="no reference caption"):
        caption_scores({1: "a cat"}, {1: []})


def test_lavis_imports_without_pycocoevalcap():
    # the GPU check's machine has no pycocoevalcap (about 100 MB, too large to carry): training must not need it
    code = "import sys; sys.modules['pycocoevalcap'] = None; import lavis, lavis.runners, lavis.tasks; print('ok')"
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
