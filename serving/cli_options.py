"""Checks shared by the Typer command lines: chatbot's `polaris` and the commands that serving
and training add to it (serve, data, train, export, eval)."""

from collections.abc import Callable
from pathlib import Path

import typer


def not_blank(allowed: Callable[[], str], *,
              sep: str | None = None) -> Callable[[str | None], str | None]:
    """A callback for an option that names something: `--strategy ""` is a usage error (exit 2,
    before anything is stored) rather than a silent fall back to the default. With `sep`, a
    list whose items are all blank (`--personas " , "`) is empty too."""

    def check(value: str | None) -> str | None:
        if value is not None and not (value.replace(sep, "") if sep else value).strip():
            raise typer.BadParameter(f"cannot be empty: {allowed()}")
        return value

    return check


def not_blank_path(allowed: Callable[[], str]) -> Callable[[str | Path], Path]:
    """A `parser` for a file or folder argument: `--out ""` is a usage error. Typer would turn
    it into Path(""), the current folder, before any callback could tell."""

    def parse(value: str | Path) -> Path:
        if isinstance(value, str) and not value.strip():
            raise typer.BadParameter(f"cannot be empty: {allowed()}")
        return Path(value)

    return parse


def persona_ids() -> str:
    from serving.persona import load_all_personas
    from serving.settings import load_settings

    settings = load_settings()
    ids = load_all_personas(settings.personas_dir, settings.data_dir)
    return f"use one of {', '.join(ids)} (`polaris personas list`)"


def backends(fallback: str = "") -> str:
    from serving.backend import available_backends

    names = f"use one of {', '.join(available_backends())}"
    return f"{names}, or leave it out for {fallback}" if fallback else names


def template_families() -> str:
    from serving.templates import FAMILIES

    return f"use one of {', '.join(FAMILIES)}, or leave it out to read it from the GGUF"
