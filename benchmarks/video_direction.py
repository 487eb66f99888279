"""Does the tiny model see the frames' order?  Train on the synthetic moving-shapes clips, then
score the same checkpoint on the held-out clips and on the same clips reversed.

    python benchmarks/video_direction.py [--options k=v ...]

Runs `train.py --cfg-path lavis/projects/synthetic/moving_shapes_tiny.yaml` (extra options are
passed through), then `train.py ... run.evaluate=True` from its checkpoint with the val split
pointed at `val_reversed.json` (each reversed clip labelled with the opposite direction), and
prints both accuracies side by side.  A model blind to the order answers a clip and its reverse
alike, so it cannot score above 50 % on both; chance is 25 %.
"""

import os
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "lavis/projects/synthetic/moving_shapes_tiny.yaml"
REVERSED = "datasets.moving_shapes.build_info.annotations.val.storage=dataset/moving_shapes/val_reversed.json"
ACCURACY = re.compile(r"held-out exact-match accuracy: ([\d.]+)% of (\d+)\s+\((.*)\)")


def run(options):
    command = [sys.executable, "train.py", "--cfg-path", CONFIG, "--options", *options]
    start = time.time()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    match = ACCURACY.search(proc.stdout + proc.stderr)
    if proc.returncode or not match:
        sys.exit(f"{' '.join(command)} failed ({proc.returncode}):\n" + (proc.stdout + proc.stderr)[-3000:])
    return float(match.group(1)), int(match.group(2)), match.group(3), time.time() - start


def main(argv):
    extra = argv[1:] if argv[:1] == ["--options"] else argv
    with tempfile.TemporaryDirectory() as out:
        trained = run([f"run.output_dir={out}", *extra])
        (job,) = os.listdir(out)
        finetuned = ["model.load_finetuned=True", f"model.finetuned={os.path.join(out, job)}", "run.evaluate=True"]
        backward = run([f"run.output_dir={out}/eval", *extra, *finetuned, REVERSED])
    print(f"config:            {CONFIG} {' '.join(extra)}")
    print(f"train + held-out:  {trained[3]:.0f} s")
    print(f"{'clips':<18} {'accuracy':>9}  by group")
    print(f"{'as recorded':<18} {trained[0]:>8.1f}%  {trained[2]}   (of {trained[1]})")
    print(f"{'reversed':<18} {backward[0]:>8.1f}%  {backward[2]}   (of {backward[1]}; answer: the opposite way)")
    print("chance 25 %; blind to the frames' order: at most 50 % on both")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
