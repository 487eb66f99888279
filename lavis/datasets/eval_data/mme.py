"""MME (BradyFU's MME_Benchmark_release_version) read as released -> evaluation items.

Place in the flow: the release folder on disk -> `read_mme` -> items (one per question) that the
evaluation dataset turns into prompts and the task scores (accuracy and accuracy+ per subtask, as
the release's eval_tool/calculation.py counts them: two questions per image).

The layout, one folder per subtask under `root` (which may also be the folder above
`MME_Benchmark/`, as some mirrors unpack it):

    <subtask>/images/<stem>.jpg|png + <subtask>/questions_answers_YN/<stem>.txt
        (artwork, celebrity, landmark, posters, scene in the release), or
    <subtask>/<stem>.jpg|png + <subtask>/<stem>.txt side by side (the other nine subtasks)

Each txt holds one line per question (two per image): `question<TAB>Yes` or `question<TAB>No`.
Items: question_id "<subtask>/<image file>/<k>" (k: the question's place in its txt, from 0),
answers ["yes"] or ["no"], meta {"subtask", "image_id": the image's file name}.
"""

import os

from lavis.datasets.eval_data import check_files, fail, make_item, read_text

#: The release's subtasks, as eval_tool/calculation.py groups them
PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
SUBTASKS = PERCEPTION + COGNITION

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
_NESTED = "MME_Benchmark"


def _base(root):
    """`root`, or `root/MME_Benchmark` when the subtasks sit one level down."""
    if not any(os.path.isdir(os.path.join(root, s)) for s in SUBTASKS) and os.path.isdir(os.path.join(root, _NESTED)):
        return os.path.join(root, _NESTED)
    return root


def required_files(root, subtasks=None):
    entries = [("root", root, "MME_Benchmark_release_version folder (one folder per subtask)")]
    if subtasks is not None and os.path.isdir(root):
        base = _base(root)
        entries += [("subtasks", os.path.join(base, s), f"MME subtask folder '{s}'") for s in subtasks]
    return entries


def read_mme(root, subtasks=None):
    """Items of the subtask folders named (all of the release's 14 that are present when None),
    subtasks in sorted order, images in file-name order, questions in file order."""
    check_files(required_files(root, subtasks))
    if not os.path.isdir(root):
        raise fail(root, "", "is not a folder (give the MME_Benchmark_release_version folder)")
    base = _base(root)
    if subtasks is None:
        subtasks = [s for s in SUBTASKS if os.path.isdir(os.path.join(base, s))]
        if not subtasks:
            raise fail(root, "", f"holds none of MME's subtask folders ({', '.join(SUBTASKS)})")
    items = []
    for subtask in sorted(subtasks):
        items += _read_subtask(os.path.join(base, subtask), subtask)
    return items


def _read_subtask(folder, subtask):
    if not os.path.isdir(folder):
        raise fail(folder, "", "is not a folder")
    split = os.path.isdir(os.path.join(folder, "questions_answers_YN"))
    text_dir = os.path.join(folder, "questions_answers_YN") if split else folder
    image_dir = os.path.join(folder, "images") if split else folder
    images = {}
    if os.path.isdir(image_dir):
        for name in sorted(os.listdir(image_dir)):
            stem, ext = os.path.splitext(name)
            if ext.lower() in IMAGE_EXTENSIONS:
                images.setdefault(stem, name)
    names = sorted(n for n in os.listdir(text_dir) if n.endswith(".txt") and os.path.isfile(os.path.join(text_dir, n)))
    if not names:
        raise fail(text_dir, "", f"holds no question files (<image stem>.txt) for MME subtask '{subtask}'")
    items = []
    for name in names:
        path = os.path.join(text_dir, name)
        stem = name[: -len(".txt")]
        image = images.get(stem)
        if image is None:
            raise fail(path, "line 1", f"image not found: {os.path.join(image_dir, stem)}.jpg|.jpeg|.png")
        image_path = os.path.join(image_dir, image)
        k = 0
        for number, line in enumerate(read_text(path).split("\n"), start=1):
            line = line.rstrip("\r")
            if not line.strip():
                continue
            if "\t" not in line:
                raise fail(path, f"line {number}", "expected 'question<TAB>Yes' or 'question<TAB>No' (no tab)")
            question, answer = line.rsplit("\t", 1)
            answer = answer.strip().lower()
            if answer not in ("yes", "no"):
                raise fail(path, f"line {number}", f"the answer must be Yes or No, not {answer!r}")
            if not question.strip():
                raise fail(path, f"line {number}", "the question is empty")
            meta = {"subtask": subtask, "image_id": image}
            items.append(make_item(f"{subtask}/{image}/{k}", image_path, question, [answer], meta))
            k += 1
        if k == 0:
            raise fail(path, "", "holds no questions")
    return items
