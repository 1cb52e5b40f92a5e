"""tools/check_corpus.py on a small invented corpus laid out like shared/realdata."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "check_corpus.py")

INDEX = """# corpus

| NN | file | repo | path | commit | bytes |
|---|---|---|---|---|---|
| 01 | `01-a__plan.json` | a/b | `scripts/ralph/prd.json` | `x` | 1 |
| 02 | `02-a__log.txt` | a/b | `.ralph/progress.md` | `x` | 1 |
| 03 | `03-a__bad.json` | a/b | `.ralph/prd.json` | `x` | 1 |
"""


def test_one_row_per_file_with_family_stories_entries_and_errors(tmp_path: Any) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "INDEX.md").write_text(INDEX)
    (corpus / "01-a__plan.json").write_text(
        json.dumps({"tasks": [{"title": "a"}, {"title": "b", "done": True}]})
    )
    (corpus / "02-a__log.txt").write_text(
        "- [20260119T115317Z] iter 1 status=OK\n- [20260119T115400Z] iter 2\n"
    )
    (corpus / "03-a__bad.json").write_text('{"userStories": [ ... ]}')
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, TOOL, str(corpus), "--no-daemon", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = {r["number"]: r for r in json.loads(out.read_text())}
    assert (rows["01"]["family"], rows["01"]["stories"], rows["01"]["entries"]) == ("ralph", 2, 0)
    assert (rows["02"]["family"], rows["02"]["entries"]) == ("ralph-dir", 2)
    assert rows["03"]["errors"] and "invalid JSON" in rows["03"]["errors"][0]
    assert done.stdout.count("\n| 0") == 3
