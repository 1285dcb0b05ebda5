"""Dependencies point one way (chatbot -> serving, training -> serving) and heavy packages are
imported lazily, only inside serving/training."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"llama_cpp", "ollama", "openai", "torch", "transformers", "peft", "trl"}
FORBIDDEN = {
    "chatbot": HEAVY | {"training"},
    "serving": {"chatbot", "training"},
    "training": {"chatbot"},
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_modules(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_the_app_and_cli_loads_no_heavy_package():
    code = (
        "import sys, chatbot.cli, chatbot.engine, chatbot.app.context, serving;"
        f"print(sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"
