"""README's "A first sync in five minutes", run as written: it leaves the checkout as it was,
its result is what the README says, and the dry run names rows as the real run does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from support import ROOT

README = ROOT / "README.md"
EXAMPLE = ROOT / "config" / "examples" / "first-merge"


def quickstart_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## A first sync in five minutes", 1)[1]
    block = section.split("```", 2)[1]
    return [line.strip() for line in block.strip().splitlines() if line.strip()]


def test_the_quickstart_leaves_the_checkout_alone_and_does_what_the_readme_says() -> None:
    commands = quickstart_commands()
    assert commands[:2] == ["make venv", ". .venv/bin/activate"]
    before = {p: p.read_bytes() for p in EXAMPLE.rglob("*") if p.is_file()}
    # the venv this suite runs in stands for `make venv` and its activation
    venv = Path(sys.executable).parent
    script = "\n".join(
        [f'export PATH="{venv}:/usr/bin:/bin"', *(f"echo '$ {c}'\n{c}" for c in commands[2:])]
    )
    result = subprocess.run(
        ["sh", "-e", "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"HOME": "/tmp", "LANG": "C.UTF-8"},
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    after = {p: p.read_bytes() for p in EXAMPLE.rglob("*") if p.is_file()}
    assert after == before, "the quickstart changed tracked files"

    # "Two people only the CRM has go to accounts.csv, and one ... comes back to crm.csv"
    assert "2 pairs matched by email" in out
    assert "created a 1, b 2" in out
    assert "conflicts 3" in out
    # the excluded row: the same id in the dry run, the real run's report and `syncd errors`
    dry = re.search(r"^  a (\w+)\s+excluded\s+no email address", out, re.MULTILINE)
    listed = re.search(r"^a\s+(\w+)\s+excluded\s+-\s+no email address", out, re.MULTILINE)
    assert dry and listed, out
    assert dry.group(1) == listed.group(1)
