"""Keep README.md honest: what it names must exist.

- every `bwdp <command>` in a code span or block is a registered CLI command (bwdp_core/cli.py COMMANDS);
- the node parameter table (between the vo-params markers) lists exactly the parameters of config/vo.yaml, with the
  same defaults;
- every `make <target>` it shows is a Makefile target, every repository path it names exists, every embedded image is
  committed.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bwdp_core.commands.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VO_YAML = ROOT / "ros" / "config" / "vo.yaml"


@pytest.fixture(scope="module")
def readme() -> str:
    if not README.is_file():
        pytest.fail("README.md is missing")
    return README.read_text()


def code_text(markdown: str) -> str:
    """Everything inside fenced code blocks and inline code spans (where commands are written)."""
    blocks = re.findall(r"```[^\n]*\n(.*?)```", markdown, flags=re.S)
    without_blocks = re.sub(r"```.*?```", "", markdown, flags=re.S)
    spans = re.findall(r"`([^`\n]+)`", without_blocks)
    return "\n".join(blocks + spans)


def bwdp_commands_named(markdown: str) -> set[str]:
    return set(re.findall(r"(?:^|[\s$(|;&])bwdp ([a-z][a-z0-9-]*)", code_text(markdown), flags=re.M))


def vo_parameters() -> dict:
    """The node's parameters in config/vo.yaml: ``{node_name or /**: {ros__parameters: {...}}}``, nested keys dotted."""
    doc = yaml.safe_load(VO_YAML.read_text())
    assert isinstance(doc, dict) and doc, f"{VO_YAML} holds no parameters"
    (section,) = doc.values()
    params = section["ros__parameters"]

    def flatten(d: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in d.items():
            if isinstance(value, dict):
                out.update(flatten(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    return flatten(params)


def render_parameter_table() -> str:
    """The README table as it should read: one row per parameter of config/vo.yaml, its comment as the meaning.

    Regenerate after changing config/vo.yaml:  python tests/test_readme.py  (prints the rows to paste)."""
    params = vo_parameters()
    rows = ["| parameter | default | meaning |", "|---|---|---|"]
    comment: list[str] = []
    started = False
    for line in VO_YAML.read_text().splitlines():
        text = line.strip()
        if text == "ros__parameters:":
            started, comment = True, []
        elif started and text.startswith("#"):
            comment.append(text.lstrip("#").strip())
        elif started and (m := re.match(r"(\w+):\s*(.*)$", text)) and m.group(1) in params:
            meaning = " ".join(comment).replace("|", "\\|")
            rows.append(f"| `{m.group(1)}` | `{m.group(2)}` | {meaning} |")
            comment = []
    return "\n".join(rows)


def readme_parameter_table(markdown: str) -> dict[str, str]:
    match = re.search(r"<!-- vo-params:begin -->(.*?)<!-- vo-params:end -->", markdown, flags=re.S)
    assert match, "README has no node parameter table between <!-- vo-params:begin --> and <!-- vo-params:end -->"
    rows = {}
    for line in match.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue  # header, separator
        rows[cells[0].strip("`")] = cells[1].strip("`")
    return rows


def test_command_extraction_finds_commands_only_in_code():
    text = "bwdp is a project.\n\n```bash\nbwdp train --config x\n$ bwdp eval-odom --pred a\n```\nrun `bwdp synth`."
    assert bwdp_commands_named(text) == {"train", "eval-odom", "synth"}


def test_every_bwdp_command_in_readme_exists(readme):
    named = bwdp_commands_named(readme)
    assert named, "the README shows no bwdp command at all"
    unknown = sorted(named - set(COMMANDS))
    assert not unknown, f"README names bwdp commands that do not exist: {unknown} (known: {sorted(COMMANDS)})"


def bwdp_invocations(markdown: str) -> list[tuple[str, list[str]]]:
    """(command, [--options]) of every `bwdp CMD ...` / `-m bwdp_core.commands.cli CMD ...` line in the code blocks."""
    found = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", markdown, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0]
            match = re.search(r"(?:^|[\s$])(?:bwdp|-m bwdp_core\.cli) ([a-z][a-z0-9-]*)(.*)", line)
            if match:
                options = [tok.split("=")[0] for tok in match.group(2).split() if tok.startswith("--")]
                found.append((match.group(1), options))
    return found


def train_set_keys(markdown: str) -> set[str]:
    """Keys of every `--set key=value` of a `bwdp train` line in the README's code blocks."""
    keys = set()
    for block in re.findall(r"```[^\n]*\n(.*?)```", markdown, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if re.search(r"(?:^|[\s$])(?:bwdp|-m bwdp_core\.cli) train\b", line):
                keys.update(re.findall(r"--set \"?([\w.]+)=", line.split(" #")[0]))
    return keys


def test_every_train_key_in_readme_exists_in_config_train_yaml(readme):
    from bwdp_core.train.config import FREE_FORM

    defaults = yaml.safe_load((ROOT / "bwdp_core" / "config" / "train.yaml").read_text())
    keys = train_set_keys(readme)
    assert keys, "the README shows no --set key=value"
    unknown = []
    for key in keys:
        parts = tuple(key.split("."))
        if any(parts[:len(free)] == free for free in FREE_FORM):
            continue  # a data source / loss override: keys checked by their consumers
        node = defaults
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                unknown.append(key)
                break
            node = node[part]
    assert not unknown, f"README sets training keys that config/train.yaml does not have: {sorted(unknown)}"


def test_every_option_of_a_bwdp_command_in_readme_exists(readme):
    import argparse
    import importlib

    unknown = []
    for command, options in bwdp_invocations(readme):
        if command not in COMMANDS:
            continue  # reported by test_every_bwdp_command_in_readme_exists
        parser = argparse.ArgumentParser()
        importlib.import_module(COMMANDS[command][0]).add_arguments(parser)
        known = set(parser._option_string_actions)
        unknown += [f"bwdp {command} {opt}" for opt in options if opt not in known]
    assert not unknown, f"README uses options that the commands do not have: {sorted(set(unknown))}"


def test_readme_mentions_the_two_commands(readme):
    text = code_text(readme)
    assert "make demo" in text and "make test" in text


def test_make_targets_in_readme_exist(readme):
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", makefile, flags=re.M))
    named = set(re.findall(r"(?:^|[\s$])make ([a-z][\w-]*)", code_text(readme), flags=re.M))
    assert named <= targets, f"README names make targets that do not exist: {sorted(named - targets)}"


def test_parameter_table_matches_config_vo_yaml(readme):
    if not VO_YAML.is_file():
        pytest.fail("config/vo.yaml is missing")
    table = readme_parameter_table(readme)
    params = vo_parameters()
    missing = sorted(set(params) - set(table))
    extra = sorted(set(table) - set(params))
    hint = f"\nregenerated table (python tests/test_readme.py):\n{render_parameter_table()}"
    assert not missing and not extra, (f"README parameter table out of date: missing {missing}, "
                                       f"not in config/vo.yaml {extra}{hint}")
    wrong = {}
    for name, value in params.items():
        shown = yaml.safe_load(table[name]) if table[name] else None
        if shown != value and not (isinstance(value, str) and table[name] == value):
            wrong[name] = (table[name], value)
    assert not wrong, f"README parameter defaults differ from config/vo.yaml (README, yaml): {wrong}{hint}"


def test_parameter_table_is_the_rendering_of_config_vo_yaml(readme):
    """Meanings too: vo.yaml's comments are the settings' descriptions (tests/test_ros_params.py), so a description
    that states behaviour (like `auto`) reads the same here as in the code."""
    match = re.search(r"<!-- vo-params:begin -->\n(.*?)\n<!-- vo-params:end -->", readme, flags=re.S)
    assert match and match.group(1) == render_parameter_table(), \
        f"README parameter table out of date; regenerated (python tests/test_readme.py):\n{render_parameter_table()}"


GENERATED = ("bench/results",)  # written by the benchmarks, not in a fresh clone


def test_repository_paths_in_readme_exist(readme):
    paths = set(re.findall(r"\b((?:bwdp_core|ros|tools|scripts|bench|tests|docs)/[\w./-]*\w)",
                           readme))
    missing = sorted(p for p in paths if not (ROOT / p).exists() and not p.startswith(GENERATED))
    assert not missing, f"README names files that do not exist: {missing}"


def layout_modules(markdown: str) -> set[str]:
    """Module paths of the Layout section's code block: `pkg/` lines, then indented `sub/module.py` lines."""
    section = re.search(r"^## Layout\n(.*?)(?=^## )", markdown, flags=re.S | re.M)
    assert section, "README has no '## Layout' section"
    block = re.search(r"```[^\n]*\n(.*?)```", section.group(1), flags=re.S)
    assert block, "the Layout section has no code block"
    modules, package = set(), None
    for line in block.group(1).splitlines():
        if not line.strip():
            continue
        entry = line.split()[0]
        if not line.startswith(" "):
            package = entry if entry.endswith("/") else None
        elif package and entry.endswith(".py"):
            modules.add(package + entry)
    return modules


def test_layout_lists_every_module_and_only_existing_ones(readme):
    listed = layout_modules(readme)
    actual = {str(p.relative_to(ROOT)) for pkg in ("bwdp_core", "ros/bwdp_ros", "tools/bwdp_tools")
              for p in (ROOT / pkg).rglob("*.py")
              if p.name != "__init__.py"}
    assert not sorted(listed - actual), f"README layout names modules that do not exist: {sorted(listed - actual)}"
    assert not sorted(actual - listed), f"modules missing from the README layout: {sorted(actual - listed)}"


def test_embedded_images_exist(readme):
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", readme)
    assert any("trajectory" in i for i in images) and any("depth" in i for i in images), images
    missing = [i for i in images if not (ROOT / i).is_file()]
    assert not missing, f"README embeds images that are not in the repository: {missing}"


if __name__ == "__main__":
    print(render_parameter_table())
