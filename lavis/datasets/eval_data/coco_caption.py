"""COCO captions (Karpathy test split, as LAVIS releases it) and NoCaps val -> evaluation items.

Place in the flow: the split's files and images on disk -> `read_coco_caption` / `read_nocaps` ->
items (one per image) that the evaluation dataset turns into prompts and the task scores against
the same COCO-format ground truth (pycocoevalcap: BLEU, METEOR, ROUGE-L, CIDEr, SPICE).

COCO Karpathy test, LAVIS's two files (the same layout for the val split's `coco_karpathy_val*.json`):
  * `coco_karpathy_test.json` (LAVIS's `coco/annotations/`): a list of `{"image":
    "val2014/COCO_val2014_000000391895.jpg", "caption": [5 captions]}`, image paths relative to
    COCO's image folder (the one holding `val2014/`); the image_id is the integer at the end of
    the file name, as LAVIS's COCOCapEvalDataset derives it;
  * `coco_karpathy_test_gt.json` (LAVIS's `cache/coco_gt/`), COCO format: `{"annotations":
    [{"image_id", "caption", "id"}], "images": [{"id"}]}`; an item's answers are its captions here.
NoCaps val, `nocaps_val_4500_captions.json`, COCO format: `{"images": [{"id", "file_name",
"domain", ...}], "annotations": [{"image_id", "caption", "id"}]}`, images by file_name in the
validation image folder.
Items: question_id = str(image_id), question "", answers the reference captions in file order,
meta {"image_id"} (NoCaps: also "domain" when the file gives it).
"""

import os

from lavis.datasets.eval_data import (
    ImageCheck,
    UniqueIds,
    check_files,
    expect,
    fail,
    field,
    make_item,
    read_json,
)


def required_files(annotation_path, gt_path, image_root):
    return [
        ("annotation_path", annotation_path, "COCO Karpathy split, LAVIS's coco_karpathy_test.json"),
        ("gt_path", gt_path, "its COCO-format ground truth, LAVIS's coco_karpathy_test_gt.json"),
        ("image_root", image_root, "COCO image folder (the one holding val2014/)"),
    ]


def nocaps_required_files(annotation_path, image_root):
    return [
        ("annotation_path", annotation_path, "NoCaps val captions, nocaps_val_4500_captions.json"),
        ("image_root", image_root, "NoCaps validation image folder"),
    ]


def image_id_of(name):
    """COCO's image id from a file name: 'val2014/COCO_val2014_000000391895.jpg' -> 391895 (None if absent)."""
    tail = os.path.splitext(os.path.basename(name))[0].rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _coco_format(path):
    """(images: [(where, image dict)], captions: {image_id: [caption, ...]}) of a COCO-format file."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise fail(path, "", f"must hold a COCO-format object, not a {type(data).__name__}")
    images = field(data, "images", list, path, "")
    annotations = field(data, "annotations", list, path, "")
    captions = {}
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        image_id = field(ann, "image_id", int, path, where)
        captions.setdefault(image_id, []).append(field(ann, "caption", str, path, where))
    listed = []
    for i, image in enumerate(images):
        field(image, "id", int, path, f"images[{i}]")
        listed.append((f"images[{i}]", image))
    return listed, captions


def read_coco_caption(annotation_path, gt_path, image_root):
    """Items of the split's images, in the annotation file's order."""
    check_files(required_files(annotation_path, gt_path, image_root))
    rows = read_json(annotation_path)
    if not isinstance(rows, list):
        raise fail(annotation_path, "", f"must hold a JSON list of images, not a {type(rows).__name__}")
    gt_images, captions = _coco_format(gt_path)
    known = {image["id"] for _, image in gt_images}
    items = []
    check_image, unique = ImageCheck(), UniqueIds()
    for i, row in enumerate(rows):
        where = f"row {i}"
        image = field(row, "image", str, annotation_path, where)
        image_id = image_id_of(image)
        if image_id is None:
            raise fail(annotation_path, where, f"no image id at the end of the file name {image!r}")
        if image_id not in known or not captions.get(image_id):
            raise fail(annotation_path, where, f"image id {image_id} has no captions in {gt_path}")
        unique(str(image_id), annotation_path, where)
        image_path = check_image(os.path.join(image_root, image), annotation_path, where)
        items.append(make_item(str(image_id), image_path, "", captions[image_id], {"image_id": image_id}))
    if not items:
        raise fail(annotation_path, "", "holds no images")
    return items


def read_nocaps(annotation_path, image_root):
    """Items of NoCaps val's images, in the file's order."""
    check_files(nocaps_required_files(annotation_path, image_root))
    images, captions = _coco_format(annotation_path)
    items = []
    check_image, unique = ImageCheck(), UniqueIds()
    for where, image in images:
        image_id = image["id"]
        name = field(image, "file_name", str, annotation_path, where)
        if not captions.get(image_id):
            raise fail(annotation_path, where, f"image id {image_id} has no captions in 'annotations'")
        unique(str(image_id), annotation_path, where)
        image_path = check_image(os.path.join(image_root, name), annotation_path, where)
        meta = {"image_id": image_id}
        if "domain" in image:
            meta["domain"] = expect(image["domain"], str, annotation_path, where, "'domain'")
        items.append(make_item(str(image_id), image_path, "", captions[image_id], meta))
    if not items:
        raise fail(annotation_path, "", "holds no images")
    return items
