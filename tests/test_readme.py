"""The README's and the docs pages' code runs as written.

`python` blocks (README.md and every docs/*.md page) are executed; the ones that build a trainer train
for two steps and are marked slow. In `bash` blocks every `arca` command line parses with the real CLI
parser, every `make` target is a target of the Makefile and every file a command names exists.
"""

import re
import shlex
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

import pytest

from arca_rl._config import packaged_configs
from arca_rl.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


def blocks(page: Path, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", page.read_text(), flags=re.S)


def python_blocks() -> list[str]:
    return blocks(README, "python")


def block_with(text: str) -> tuple[str, str]:
    """(page, block) of the one python block, on any page, that contains `text`."""
    found = [(p.relative_to(ROOT).as_posix(), b) for p in PAGES for b in blocks(p, "python") if text in b]
    assert len(found) == 1, f"expected one python block with {text!r} in README/docs, found {len(found)}"
    return found[0]


def test_readme_has_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def test_readme_is_a_landing_page_that_links_every_docs_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 200, "README.md is the landing page: move the detail into docs/"
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)", text))
    assert linked == {p.relative_to(ROOT).as_posix() for p in PAGES[1:]}


def test_readme_links_and_anchors_resolve():
    """mkdocs --strict checks the links inside docs/; the README's own links are checked here."""
    from markdown.extensions.toc import slugify

    for target in re.findall(r"\]\(([^)\s]+)\)", README.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        assert (ROOT / path).is_file(), f"README links to {path}: no such file"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), flags=re.M)
            assert anchor in {slugify(h.replace("`", ""), "-") for h in headings}, f"README: no #{anchor} in {path}"


def test_docs_list_every_public_name():
    import arca_rl

    section = (ROOT / "docs" / "index.md").read_text().split("## The public API", 1)[1]
    missing = [name for name in arca_rl.__all__ if f"`{name}`" not in section]
    assert not missing, f"docs/index.md, 'The public API', does not list {missing}"


def test_trainer_page_names_every_credit_setting():
    import dataclasses

    from arca_rl._credit_fields import CreditFields

    text = (ROOT / "docs" / "trainer.md").read_text()
    missing = [f.name for f in dataclasses.fields(CreditFields) if f"`{f.name}`" not in text]
    assert not missing, f"docs/trainer.md does not name the credit settings {missing}"


def test_api_example_runs_and_prints_weights(capsys):
    block = python_blocks()[0]
    assert len([line for line in block.splitlines() if line.strip()]) <= 10
    namespace: dict = {}
    exec(compile(block, "README.md:api", "exec"), namespace)
    weights, mask = namespace["weights"], namespace["mask"]
    assert weights.sum(1).tolist() == pytest.approx([1.0, 1.0])
    assert (weights[mask == 0] == 0).all()
    assert "regime" in capsys.readouterr().out


@pytest.mark.slow
def test_trainer_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    page, block = block_with("ARCAGRPOTrainer(")
    exec(compile(block, f"{page}:trainer", "exec"), namespace)
    history = namespace["trainer"].state.log_history
    assert any("credit/gini" in h for h in history)


@pytest.mark.slow
def test_rloo_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    page, block = block_with("ARCARLOOTrainer(")
    exec(compile(block, f"{page}:rloo", "exec"), namespace)
    history = namespace["trainer"].state.log_history
    assert any("credit/gini" in h for h in history)


# Every other python block on every page runs too (the three above are checked more closely).
_CHECKED = (python_blocks()[0], block_with("ARCAGRPOTrainer(")[1], block_with("ARCARLOOTrainer(")[1])
# A block that imports verl (docs/many-gpus.md's launcher) runs in verl's own environment: tests/test_verl.py.
_OTHER = [
    pytest.param(b, id=f"{p.relative_to(ROOT).as_posix()}:{i}", marks=[pytest.mark.slow] * ("Trainer(" in b))
    for p in PAGES
    for i, b in enumerate(blocks(p, "python"))
    if b not in _CHECKED and not re.search(r"^(from|import) verl\b", b, flags=re.M)
]


@pytest.mark.parametrize("block", _OTHER)
def test_every_other_python_block_runs(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs-block", "exec"), {})


def command_lines(block: str) -> list[list[str]]:
    """The shell words of each command in a bash block (continuations joined, comments dropped)."""
    text = block.replace("\\\n", " ")
    return [words for line in text.splitlines() if (words := shlex.split(line, comments=True))]


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))


def arca_argv(words: list[str]) -> list[str] | None:
    """The `arca` arguments of a command line, or None when it runs something else."""
    if Path(words[0]).name == "arca":
        return words[1:]
    if "arca_rl.cli" in words:  # python -m arca_rl.cli ..., accelerate launch ... -m arca_rl.cli ...
        return words[words.index("arca_rl.cli") + 1 :]
    return None


BASH = [
    pytest.param(words, id=f"{p.relative_to(ROOT).as_posix()}:{' '.join(words)[:60]}")
    for p in PAGES
    for b in blocks(p, "bash")
    for words in command_lines(b)
]


@pytest.mark.parametrize("words", BASH)
def test_bash_block_commands_exist(words):
    argv = arca_argv(words)
    if argv is not None:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as e:
            pytest.fail(f"`arca {' '.join(argv)}` does not parse (exit {e.code})")
        config = getattr(args, "config", None)
        assert config is None or (ROOT / config).is_file() or str(config) in packaged_configs(), (
            f"--config {config}: no such file"
        )
        if "--config_file" in words:  # accelerate launch --config_file configs/accelerate/... -m arca_rl.cli
            config_file = words[words.index("--config_file") + 1]
            assert (ROOT / config_file).is_file(), f"--config_file {config_file}: no such file"
    elif words[0] == "make":
        missing = {w for w in words[1:] if not w.startswith("-")} - make_targets()
        assert not missing, f"make {' '.join(sorted(missing))}: not a Makefile target"
    elif Path(words[0]).name.startswith("python"):
        script = next((w for w in words[1:] if w.endswith(".py")), None)
        assert script is None or (ROOT / script).is_file(), f"{script}: no such file"
    else:
        pytest.fail(f"unknown command in a docs bash block: {' '.join(words)} (teach tests/test_readme.py)")


def test_docs_bash_blocks_are_checked():
    """The check above sees the commands the pages really contain (it cannot pass on an empty list)."""
    seen = {" ".join(words[:2]) for words in (p.values[0] for p in BASH)}
    assert {"make demo", "make test", "make real-model"} <= seen
    assert any(arca_argv(p.values[0]) and arca_argv(p.values[0])[0] == "sweep" for p in BASH)


def _folder(path: object) -> str:
    return PurePosixPath(str(path)).as_posix().rstrip("/")


def _page_commands(page: Path) -> list[tuple[str, object]]:
    """(command line, parsed `arca` arguments) of every `arca` command in the page's bash blocks, in page order."""
    parser = build_parser()
    return [(" ".join(words), parser.parse_args(argv))
            for b in blocks(page, "bash") for words in command_lines(b) if (argv := arca_argv(words)) is not None]


def folder_problems(page: Path) -> list[str]:
    """What stops the page's `arca` commands, run in page order from the repository root, from working as shown:
    a run folder written twice (`arca train` refuses a folder that holds a run unless --resume; a second `arca demo`
    or `arca diagnose` into a folder replaces what the first wrote), a --resume of a folder nothing wrote, a
    folder that `arca eval --adapter`, `arca diagnose --adapter` or `arca report` reads before any command wrote it,
    and a shell pattern that hands `arca report` a file (a demo folder's summary.json: refused).
    Folders as the CLI derives them: `--output-dir`/`--out`, else runs/<config name> (train), runs/demo (demo, its
    runs <out>/<method> and <out>/<method>-s<seed> after the first seed), diagnose/<run or adapter or model name>."""
    from arca_rl._config import load_config
    from arca_rl._demo import BASE_EVAL_FILE, DEFAULT_SEEDS, DEMO_METHODS, SUMMARY_FILE

    written: dict[str, str] = {}  # folder -> the command that wrote it
    run_names: dict[str, str] = {}  # run folder -> its run's name (diagnose's default folder)
    files: set[str] = set()  # files written beside run folders (a demo's summary)
    problems: list[str] = []

    def write(folder: str, line: str) -> None:
        if folder in written:
            problems.append(f"`{line}` writes {folder}/, which `{written[folder]}` wrote")
        written.setdefault(folder, line)

    def read(folder: str, line: str) -> None:
        if not any(fnmatch(f, folder) for f in written):
            problems.append(f"`{line}` reads {folder}, which no command before it on the page wrote")

    for line, args in _page_commands(page):
        if args.command == "train" and not args.dry_run:
            where = ROOT / args.config if (ROOT / args.config).is_file() else str(args.config)  # a packaged name
            # only the run's name is read here: a GPU page's vLLM setting is refused on a machine without vLLM
            overrides = [o for o in args.overrides or [] if not o.startswith("training.use_vllm=")]
            name = load_config(where, overrides, build=False).name
            folder = _folder(args.output_dir or f"runs/{name}")
            if args.resume:
                read(folder, line)
            else:
                write(folder, line)
                run_names[folder] = name
        elif args.command == "demo":
            out = _folder(args.output_dir or "runs/demo")
            write(out, line)
            files.update({f"{out}/{SUMMARY_FILE}", f"{out}/{BASE_EVAL_FILE}"})
            methods = args.methods.split(",") if args.methods else DEMO_METHODS
            seeds = list(args.seeds) if args.seeds is not None else DEFAULT_SEEDS
            for method in methods:
                for j, seed in enumerate(seeds):
                    suffix = f"-s{seed}" if j else ""
                    run_names[f"{out}/{method}{suffix}"] = f"demo-{method.replace('+', '_')}{suffix}"
                    written[f"{out}/{method}{suffix}"] = line
        elif args.command == "diagnose":
            if args.adapter:
                read(_folder(args.adapter), line)
            source = _folder(args.adapter) if args.adapter else None
            name = run_names.get(source or "") or PurePosixPath(source or args.model or "tiny").name
            write(_folder(args.out or f"diagnose/{name}"), line)
        elif args.command == "eval" and args.adapter:
            read(_folder(args.adapter), line)
        elif args.command == "report":
            for run in args.runs:
                read(_folder(run), line)
                problems += [f"`{line}` passes the file {f} (refused: not a run folder)" for f in sorted(files)
                             if fnmatch(f, _folder(run))]
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_page_commands_run_in_order(page):
    """Each page's `arca` commands can be run one after another as shown: every command that writes a folder writes
    its own, and every folder read was written before."""
    assert folder_problems(page) == []


def test_folder_rules_catch_what_the_cli_refuses(tmp_path):
    """The check above on a made-up page: two trains into runs/demo-uniform (the second is refused), a --resume that
    continues one, a second default demo, a demo's files in a report's pattern, a report of a folder nothing
    wrote."""
    page = tmp_path / "page.md"
    page.write_text("```bash\narca train --config configs/demo.yaml\narca train --config configs/demo.yaml --resume\n"
                    "arca train --config configs/demo.yaml --set training.learning_rate=1e-4\narca demo\n"
                    "arca demo --methods uniform,arca\narca diagnose --adapter runs/demo/arca-s1 --task arithmetic\n"
                    "arca report runs/demo/*\narca report runs/study\n```\n")
    assert folder_problems(page) == [
        "`arca train --config configs/demo.yaml --set training.learning_rate=1e-4` writes runs/demo-uniform/, which "
        "`arca train --config configs/demo.yaml` wrote",
        "`arca demo --methods uniform,arca` writes runs/demo/, which `arca demo` wrote",
        "`arca report runs/demo/*` passes the file runs/demo/base_eval.json (refused: not a run folder)",
        "`arca report runs/demo/*` passes the file runs/demo/summary.json (refused: not a run folder)",
        "`arca report runs/study` reads runs/study, which no command before it on the page wrote",
    ]
