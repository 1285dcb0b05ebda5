"""`polaris data ...`: dataset commands (registered through the polaris.commands entry point)."""

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Training datasets: validate and describe.", no_args_is_help=True)


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Dataset files.")]) -> None:
    """Check every record; the first problem is reported as file:line: field: reason."""
    from training.formats import MIN_ADVISED, load

    for path in files:
        dataset = load(path)
        typer.echo(f"{path}: {len(dataset)} {dataset.format} records, ok")
        if len(dataset) < MIN_ADVISED and dataset.format not in ("seed", "debate"):
            typer.echo(f"{path}: warning: {len(dataset)} examples; at least {MIN_ADVISED} "
                       f"good ones are advised to teach a style", err=True)


@app.command()
def stats(
    file: Annotated[Path, typer.Argument(help="A dataset file.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Counts, turns, reply lengths and the register of the replies."""
    from training.stats import describe

    summary = describe(file)
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
        return
    for key, value in summary.items():
        typer.echo(f"{key:<24} {value}")
