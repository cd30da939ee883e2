"""The repository stands alone: every link in its Markdown leads to a file of the
repository (and to a heading that exists, for an `#anchor`), and nothing cites a document
outside it."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_DIRS = {".git", ".venv", "var", "node_modules", "staticfiles", ".pytest_cache",
                ".ruff_cache"}

# [text](target) and ![alt](target), with an optional "title"; and [label]: target.
INLINE_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`+[^`\n]*`+")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def repository_files(suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(
        path for path in ROOT.rglob("*")
        if path.is_file() and path.name.endswith(suffixes)
        and not SKIPPED_DIRS & set(path.relative_to(ROOT).parts)
    )


def markdown_files() -> list[Path]:
    return repository_files((".md",))


def prose(text: str) -> str:
    """The Markdown without its code blocks and code spans, where nothing is a link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(path: Path) -> list[str]:
    text = prose(path.read_text(encoding="utf-8"))
    return INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: formatting dropped, lower case, punctuation
    removed, spaces made hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[`*]|<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = counts.get(base, 0)
        counts[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in links(path):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
            broken.append(f"{target}: leads outside the repository")
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if ROOT not in linked.parents and linked != ROOT:
            broken.append(f"{target}: leads outside the repository")
        elif not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    return broken


def test_the_readme_and_the_docs_are_checked():
    names = {path.relative_to(ROOT).as_posix() for path in markdown_files()}
    assert {"README.md", "docs/contract.md", "docs/development.md"} <= names


@pytest.mark.parametrize(
    "path", markdown_files(), ids=lambda path: path.relative_to(ROOT).as_posix()
)
def test_every_link_resolves_inside_the_repository(path):
    assert broken_links(path) == []


# `deliveries/http.py`, `tests/test_docs.py::test_name`: a file the prose names in code.
NAMED_PATH = re.compile(r"`([\w.-]+(?:/[\w.-]+)+)(?:::[^`]*)?`")
# Local state that `dev.py run` makes; not in the repository.
RUNTIME_DIRS = ("var/",)


def missing_named_files(path: Path) -> list[str]:
    """Files named in code spans (`deliveries/http.py`) that do not exist: where a rule
    lives must stay true when code moves."""
    top_level = {entry.name for entry in ROOT.iterdir() if entry.is_dir()}
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    missing = []
    for name in NAMED_PATH.findall(text):
        if name.split("/")[0] not in top_level or name.startswith(RUNTIME_DIRS):
            continue
        if not (ROOT / name).exists() and not (path.parent / name).exists():
            missing.append(name)
    return missing


@pytest.mark.parametrize(
    "path", markdown_files(), ids=lambda path: path.relative_to(ROOT).as_posix()
)
def test_every_file_the_docs_name_exists(path):
    assert missing_named_files(path) == []


def test_the_checker_finds_what_is_broken(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# The other page\n\n## Its `second` part\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n"
        "[fine](other.md) [fine too](other.md#its-second-part) [here](#page)\n"
        "![missing](pictures/none.png) [no anchor](other.md#nowhere)\n"
        "[outside](../../elsewhere/notes.md) [web](https://example.com/)\n"
        "`[not a link](nowhere.md)`\n\n"
        "```\n[not a link either](nowhere.md)\n```\n"
        "Rules live in `docs/other.md` and `docs/gone.py::rule`; state in `var/x.db`.\n"
    )
    assert broken_links(page) == [
        "pictures/none.png: no such file",
        "other.md#nowhere: no heading #nowhere in docs/other.md",
        "../../elsewhere/notes.md: leads outside the repository",
        "https://example.com/: leads outside the repository",
    ]
    assert missing_named_files(page) == ["docs/gone.py"]


def test_nothing_cites_the_specification_outside_the_repository():
    # Rules are said in words or linked to the repository's own docs.
    citation = re.compile("SPEC" + r"(\.md|\s*§|:)|\.\./" + "shared")
    files = repository_files((".md", ".py", ".html", ".txt", ".toml", ".yml", ".example"))
    files += [ROOT / "Dockerfile", ROOT / ".ci" / "run"]
    cited = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in files if path.exists()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if citation.search(line)
    ]
    assert cited == []
