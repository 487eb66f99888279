"""Captioning: the COCO caption metrics (BLEU-1..4, METEOR, ROUGE-L, CIDEr) through pycocoevalcap.

Place in the flow: evaluation.  The task generates one caption per image and scores them all
against the reference captions here, at once (CIDEr weighs n-grams by how rare they are across
the whole set of references, so it is a corpus score, not a mean of per-image scores).

Both sides go through the PTB tokenizer first (lowercased, punctuation removed), as the COCO
caption evaluation does.  SPICE is left out: it downloads Stanford CoreNLP models at first use.
The tokenizer and METEOR run Java.  The values are pycocoevalcap's own (fractions: CIDEr 1.17 is
the "117" papers print).  The tokenizer and METEOR are English tools: a Chinese caption is not
segmented into words, so its scores are not comparable to English ones.  pycocoevalcap (about
100 MB with its Java jars) is imported when captions are scored, not with `lavis`: training runs
where it is not installed (benchmarks/gpu_check.sh's machine).
"""

import shutil

from lavis.common.errors import UserError

METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def require_java():
    """Stop with one line when `java` (for the PTB tokenizer and METEOR) is not installed."""
    if shutil.which("java") is None:
        raise UserError(
            "caption scores need Java (the PTB tokenizer and METEOR run it): "
            "install the Debian package default-jre-headless"
        )


def tokenize(captions):
    """{image_id: [caption, ...]} -> {image_id: [tokenised caption, ...]} with the PTB tokenizer."""
    require_java()
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    return PTBTokenizer().tokenize({key: [{"caption": str(text)} for text in texts] for key, texts in captions.items()})


def caption_scores(predictions, references):
    """The COCO caption metrics of one predicted caption per image.

    predictions: {image_id: caption}; references: {image_id: [reference caption, ...]}, the same
    image ids.  Returns {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"}
    as floats (pycocoevalcap's values, fractions).
    """
    if set(predictions) != set(references):
        missing, extra = set(references) - set(predictions), set(predictions) - set(references)
        raise ValueError(
            f"predictions and references must cover the same images: {len(missing)} without a "
            f"prediction, {len(extra)} without references"
        )
    empty = [key for key, texts in references.items() if not texts]
    if empty:
        raise ValueError(f"{len(empty)} image(s) have no reference caption, e.g. {empty[0]!r}")
    require_java()
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge

    keys = list(references)
    gts = tokenize({key: references[key] for key in keys})
    res = tokenize({key: [predictions[key]] for key in keys})

    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"Bleu_{n}": float(value) for n, value in enumerate(bleu, start=1)}
    meteor = Meteor()  # starts the METEOR jar; deleting it stops the process
    try:
        scores["METEOR"] = float(meteor.compute_score(gts, res)[0])
    finally:
        del meteor
    scores["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return scores
