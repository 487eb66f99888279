"""Measure the newcomer's first run: `python train.py` with no arguments.

Runs it in a subprocess (extra arguments are passed through, e.g. `--options run.max_epoch=2`),
then prints wall time, the peak resident memory of the run, and the held-out accuracy it
reported, next to the targets (>= 90% accuracy, <= 5 minutes, <= 3 GB).

    python benchmarks/default_run.py
"""

import os
import re
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    command = [sys.executable, os.path.join(REPO, "train.py"), *argv]
    start = time.time()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.time() - start
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # Linux: KiB
    output = proc.stdout + proc.stderr
    match = re.search(r"held-out exact-match accuracy: ([\d.]+)% of (\d+)\s+\((.*)\)", output)
    print(f"command:       {' '.join(command)}")
    print(f"exit code:     {proc.returncode}")
    print(f"wall time:     {wall:.1f} s   (target <= 300 s)")
    print(f"peak memory:   {peak_gb:.2f} GB (target <= 3 GB)")
    if match:
        print(f"held-out acc.: {match.group(1)}% of {match.group(2)}   (target >= 90%)")
        print(f"by group:      {match.group(3)}")
    else:
        print("held-out acc.: not reported; last output lines:")
        print("\n".join(output.strip().splitlines()[-15:]))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
