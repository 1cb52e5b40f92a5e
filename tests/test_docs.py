"""The documentation holds together: links resolve, commands agree, the README's first screen.

Every relative link in README.md, CONTRIBUTING.md, CHANGELOG.md and docs/*.md must
lead to a file of the repository, and a link with ``#anchor`` to a heading of
that file (GitHub's heading ids). CI runs exactly the README's test command.
"""

from __future__ import annotations

import html
import re
import struct
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from loopdash.server.options import DAEMON_OPTIONS

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")]
)

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.S)
#: ``[text](target)`` and ``![alt](target)``, target optionally in <> and followed by a title.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.M)
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)=\"([^\"]*)\"", re.I)
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$", re.M)


def prose(markdown: str) -> str:
    """The text outside fenced code blocks and code spans, where links are links."""
    return CODE_SPAN.sub("", FENCE.sub("", markdown))


def links(markdown: str) -> list[str]:
    text = prose(markdown)
    return [*INLINE_LINK.findall(text), *REFERENCE.findall(text), *HTML_LINK.findall(text)]


def slug(heading: str) -> str:
    """GitHub's id for a heading: its text, lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = html.unescape(text.replace("`", "")).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """The ids of a page's headings; a repeated one gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for _, heading in HEADING.findall(FENCE.sub("", markdown)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of ``page`` that leads nowhere, with why."""
    markdown = page.read_text(encoding="utf-8")
    broken = []
    for target in links(markdown):
        parts = urlsplit(target)
        if parts.scheme or target.startswith("//"):
            continue  # the web: not checked here
        if parts.path:
            path = (page.parent / unquote(parts.path)).resolve()
            if not path.is_relative_to(root):
                broken.append(f"{target}: outside the repository")
                continue
            if not path.exists():
                broken.append(f"{target}: no such file")
                continue
        else:
            path = page
        if parts.fragment:
            if path.suffix != ".md":
                broken.append(f"{target}: an anchor into a file that is not Markdown")
            elif parts.fragment not in anchors(path.read_text(encoding="utf-8")):
                broken.append(f"{target}: no heading with that id")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    assert broken_links(page) == []


def test_the_readme_links_are_all_read() -> None:
    found = links((ROOT / "README.md").read_text(encoding="utf-8"))
    assert "docs/screenshot.png" in found and "LICENSE" in found and len(found) >= 15, found


def test_the_checker_finds_a_missing_file_a_missing_heading_and_an_escape(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text(
        "# The `api` page\n\n## GET /api/runs/&lt;run_id&gt;\n## Twice\n## Twice\n"
    )
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Title\n"
        "[ok](other.md#the-api-page) [ok](other.md#get-apirunsrun_id) [ok](other.md#twice-1)\n"
        "[ok](#title) ![ok](other.md) [web](https://example.org/missing.md) `[code](gone.md)`\n"
        "[gone](gone.md) [no heading](other.md#nowhere) [outside](../../etc/passwd)\n"
        '<img src="missing.png">\n'
        "```\n[fenced](fenced.md)\n```\n"
    )
    assert broken_links(page, root=tmp_path) == [
        "gone.md: no such file",
        "other.md#nowhere: no heading with that id",
        "../../etc/passwd: outside the repository",
        "missing.png: no such file",
    ]


def fenced_blocks(markdown: str, language: str) -> list[str]:
    return [block.strip() for block in re.findall(rf"^```{language}\n(.*?)^```", markdown, re.M | re.S)]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    test_section = readme.split("**Test it:**", 1)[1]
    readme_command = fenced_blocks(test_section, "bash")[0]
    assert readme_command.endswith("ruff check && ruff format --check && mypy && python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [line.strip() for line in ci if "pytest" in line and not line.lstrip().startswith("#")]
    assert commands == [readme_command]


def test_the_readme_first_screen_says_what_shows_the_page_and_gives_both_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_screen = "\n".join(readme.splitlines()[:30])
    assert "coding loop" in first_screen
    assert "https://github.com/wjlgatech/claude-loop" in first_screen
    assert "https://github.com/snarktank/ralph" in first_screen
    assert "loopdash demo\n" in first_screen and "python -m pytest\n" in first_screen
    assert "](docs/screenshot.png)" in first_screen


def test_the_screenshot_is_a_png_of_the_page_at_desktop_width() -> None:
    data = (ROOT / "docs" / "screenshot.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 1280 and 800 <= height <= 1600, (width, height)


def test_every_daemon_option_is_documented() -> None:
    documented = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    missing = [o.flag for o in DAEMON_OPTIONS if f"`{o.flag}" not in documented]
    assert missing == [], f"options no page of docs/ describes: {missing}"


def test_the_systemd_lines_shown_are_those_of_the_unit_file() -> None:
    unit = (ROOT / "deploy" / "systemd" / "loopdash@.service").read_text(encoding="utf-8").splitlines()
    shown = fenced_blocks((ROOT / "docs" / "commands.md").read_text(encoding="utf-8"), "ini")
    assert shown, "docs/commands.md shows the unit's ExecStart"
    for line in "\n".join(shown).splitlines():
        assert line in unit, f"docs/commands.md shows a line the unit file does not have: {line}"
