"""Every repository path that README.md, SECURITY.md and docs/*.md name exists: paths in
backticks, and the file map (README's "What is where" block) row by row."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ["README.md", "SECURITY.md", *sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("docs/*.md"))]
# Top-level folders a path may start with (instance/ is made by `make run` and git-ignored).
FOLDERS = ("usetix", "tests", "bench", "deploy", "tools", "docs", ".ci")
IN_BACKTICKS = re.compile(r"`([^`\s]+)`")
# A path under one of FOLDERS, as prose and map descriptions write it (a line number, a
# pytest node id or a trailing colon is not part of it).
REPOSITORY_PATH = re.compile(rf"(?<![\w./-])((?:{'|'.join(re.escape(f) for f in FOLDERS)})/[\w./-]*)")
# A bare file name (`setup.cfg`, `env.py`).
FILE_NAME = re.compile(r"[\w-]+(?:\.[\w-]+)*\.(?:py|cfg|toml|md|conf|lua|json|yaml|yml|js|css|html|sh|txt)")
FILE_NAME_IN_TEXT = re.compile(rf"(?<![\w./-])({FILE_NAME.pattern})(?![\w/])")
# In the file map, a line indented this far goes on with the description of the row above.
CONTINUATION = 10


def repository_files() -> set[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return set(listed)


FILES = repository_files()
FOLDERS_IN_TREE = {str(Path(name).parent) for name in FILES} | {
    parent.as_posix() for name in FILES for parent in Path(name).parents}
BASENAMES = {Path(name).name for name in FILES}


def exists(path: str) -> bool:
    path = path.rstrip(".,;:)")
    return path.rstrip("/") in FILES or path.rstrip("/") in FOLDERS_IN_TREE


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def named_in_backticks(text: str) -> list[str]:
    """Repository paths and bare file names in backticks, outside code blocks."""
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    named = []
    for span in IN_BACKTICKS.findall(prose):
        span = re.split(r"::|:\d", span)[0]  # tests/x.py::test_y, usetix/x.py:12
        if REPOSITORY_PATH.fullmatch(span) or FILE_NAME.fullmatch(span):
            named.append(span)
    return named


def named_in_the_map(block: str) -> list[str]:
    """The paths of a file map: the names at the start of a row (indented ones under the
    folder above), file names in a folder's description (its own files), and repository
    paths in any description. A row's description may go on over the lines below it."""
    named, folder, described = [], "", ""
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent >= CONTINUATION:
            description = line.strip()
        else:
            columns = re.split(r"\s{2,}", line.strip(), maxsplit=1)
            description = columns[1] if len(columns) > 1 else ""
            names = [name.strip() for name in columns[0].split(",") if name.strip()]
            if not indent:
                folder = names[0] if names[0].endswith("/") else ""
                named += names
                described = folder
            else:
                named += [folder + name for name in names]
                described = folder + names[0] if names[0].endswith("/") else ""
        if described:
            named += [described + name for name in FILE_NAME_IN_TEXT.findall(description)]
        named += REPOSITORY_PATH.findall(description)
    return named


def missing_paths(document: str) -> list[str]:
    text = (ROOT / document).read_text()
    named = named_in_backticks(text)
    if document == "README.md":
        for block in code_blocks(text):
            if block.lstrip().startswith("usetix/"):
                named += named_in_the_map(block)
    missing = []
    for path in named:
        if "/" in path.rstrip("/"):
            if not exists(path):
                missing.append(path)
        elif path.rstrip("/") not in BASENAMES and not exists(path):
            missing.append(path)
    return sorted(set(missing))


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_path_a_document_names_exists(document):
    assert missing_paths(document) == []


def test_the_check_finds_what_it_should():
    # The checks above are only as good as these readers.
    assert named_in_backticks("see `usetix/web/app.py:12`, `tests/x.py::test_y`, `setup.cfg`, `GET /healthz`, "
                              "`redis://host:6379/0`\n```\n`usetix/in_a_block.py`\n```\n") == [
        "usetix/web/app.py", "tests/x.py", "setup.cfg"]
    assert named_in_the_map("usetix/config.py          defaults, then instance/config.py\n"
                            "usetix/core/              pure, no Flask:\n"
                            "  token_format.py           token format\n"
                            "  passwords.py, admins.py   admin passwords\n"
                            "usetix/database/          connection.py: the connection; gone.py: (lists)\n"
                            "usetix/blueprints/        the screens:\n"
                            "  api/                      JSON API: lists.py, views.py (lists)\n"
                            "deploy/nginx.conf         the proxy (tested by tests/test_nginx.py)\n") == [
        "usetix/config.py", "usetix/core/", "usetix/core/token_format.py", "usetix/core/passwords.py",
        "usetix/core/admins.py", "usetix/database/", "usetix/database/connection.py", "usetix/database/gone.py",
        "usetix/blueprints/", "usetix/blueprints/api/", "usetix/blueprints/api/lists.py",
        "usetix/blueprints/api/views.py", "deploy/nginx.conf", "tests/test_nginx.py"]
    assert exists("usetix/") and exists("usetix/web/app.py") and not exists("usetix/db/tombstones.py")
