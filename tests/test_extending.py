"""docs/extending.md's worked examples run as written: a new dataset and a new method, trained in a tiny study.

The page's Python blocks are run in order as one script, in an empty folder, in a fresh process (the
registrations they make stay out of this one); a block whose first line is ``# file: NAME.py`` is saved as
that file beside the script instead (the new method's own file).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"
FILE_MARKER = re.compile(r"#\s*file:\s*(\S+)")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def test_the_page_has_its_worked_examples():
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 4
    assert sum(bool(FILE_MARKER.match(block)) for block in blocks) == 1
    text = DOC.read_text(encoding="utf-8")
    assert "## Add a dataset" in text and "## Add a method" in text


def test_the_worked_examples_train_and_write_their_records(tmp_path):
    script = []
    for block in python_blocks(DOC.read_text(encoding="utf-8")):
        marker = FILE_MARKER.match(block)
        if marker:
            (tmp_path / marker.group(1)).write_text(block, encoding="utf-8")
        else:
            script.append(block)
    (tmp_path / "example.py").write_text("\n\n".join(script), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(tmp_path)}
    env.pop("LBW_EVENTS", None)
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recall-gap-beta2.0+posthoc-worst" in done.stdout
    folder = tmp_path / "results" / "extending" / "records" / "brightness"
    written = sorted(path.name for path in folder.glob("*.json"))
    assert written == ["baseline__seed0.json", "recall-gap-beta2.0+posthoc-worst__seed0.json",
                       "recall-gap-beta2.0__seed0.json"]
    record = json.loads((folder / "recall-gap-beta2.0__seed0.json").read_text())
    assert record["method"] == {"name": "recall-gap", "beta": 2.0} and record["dataset"] == "brightness"
    assert record["classes"] == ["dark", "mid", "bright"] and record["history"]["train_loss"]
    assert (tmp_path / "results" / "extending" / "artifacts" / "brightness" / "recall-gap-beta2.0__seed0.pt").exists()
