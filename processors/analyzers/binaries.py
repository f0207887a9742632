"""Where the analyzers' command-line tools are: this venv first, then the tools venv.

Most tools come with the project's venv (ruff, bandit). semgrep cannot: it
pins a click release the workers' Faust rejects, so ``make`` installs it into
a venv of its own, ``.venv-tools`` beside the project. Looking in a fixed
order (next to this interpreter, that venv, then ``PATH``) means the pinned
versions win over whatever else a machine has installed.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

TOOLS_VENV = Path(__file__).resolve().parents[2] / ".venv-tools"


def find_tool(name: str) -> str:
    """The path of command ``name``; FileNotFoundError saying where it was looked for."""
    exe = f"{name}.exe" if os.name == "nt" else name
    for folder in (Path(sys.executable).parent, TOOLS_VENV / "bin"):
        candidate = folder / exe
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name} not found next to {sys.executable}, in {TOOLS_VENV} or on PATH "
            "(`make tools` installs the tools venv)"
        )
    return found


def find_semgrep_core() -> Path:
    """semgrep's engine binary, inside whichever installed semgrep wheel is found first."""
    candidates: list[Path] = []
    try:
        import semgrep

        candidates.append(Path(semgrep.__file__).parent / "bin" / "semgrep-core")
    except ImportError:
        pass
    candidates += sorted(TOOLS_VENV.glob("lib/python*/site-packages/semgrep/bin/semgrep-core"))
    for binary in candidates:
        if binary.is_file():
            return binary
    raise FileNotFoundError(
        f"semgrep-core not found in this venv or {TOOLS_VENV} (`make tools` installs it)"
    )
