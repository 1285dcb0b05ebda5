"""`polaris data ...`: dataset commands (registered through the polaris.commands entry point)."""

import json
from pathlib import Path
from typing import Annotated

import typer

from serving.cli_options import backends, not_blank, not_blank_path, persona_ids

app = typer.Typer(help="Training datasets: validate, describe, convert, restyle, grow, dedup, split.",
                  no_args_is_help=True)

DatasetFile = not_blank_path(lambda: "give a dataset file")
OutFile = not_blank_path(lambda: "give the file to write")


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Dataset files.", metavar="FILES",
                                                        parser=DatasetFile)]) -> None:
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
    file: Annotated[Path, typer.Argument(help="A dataset file.", metavar="FILE",
                                         parser=DatasetFile)],
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


@app.command()
def convert(
    src: Annotated[Path, typer.Argument(metavar="IN", help="Dataset to convert.",
                                        parser=DatasetFile)],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="File to write (.json: JSON array).",
                                        parser=OutFile)],
    to: Annotated[str, typer.Option("--to", help="chat, alpaca, completion or csv.")],
) -> None:
    """Convert between chat, alpaca, completion and CSV (preference and seed: to chat)."""
    from training.convert import convert as run

    count = run(src, out, to)
    typer.echo(f"wrote {count} {to} records to {out}", err=True)


def _teacher(kind: str, model: str):
    from serving.backend import create_backend
    from serving.settings import Settings

    return create_backend(kind, Settings(), model)


def _persona(persona_id: str):
    from serving.errors import InvalidInput
    from serving.persona import load_all_personas
    from serving.settings import Settings

    settings = Settings()
    personas = load_all_personas(settings.personas_dir, settings.data_dir)
    if persona_id not in personas:
        raise InvalidInput(f"unknown persona {persona_id!r}: choose one of {', '.join(personas)}")
    return personas[persona_id]


Teacher = Annotated[str, typer.Option(
    "--teacher-backend", help="ollama, openai, embedded, ...",
    callback=not_blank(backends))]
TeacherModel = Annotated[str, typer.Option(
    "--teacher-model", help="The teacher's model name.",
    callback=not_blank(lambda: "name the teacher's model, e.g. gemma3:27b"))]


@app.command()
def restyle(
    src: Annotated[Path, typer.Argument(metavar="IN", help="alpaca, completion or chat data.",
                                        parser=DatasetFile)],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Restyled dataset to write.",
                                        parser=OutFile)],
    persona: Annotated[str, typer.Option("--persona", help="Persona id whose voice to use.",
                                         callback=not_blank(persona_ids))],
    teacher_backend: Teacher,
    teacher_model: TeacherModel,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
) -> None:
    """Rewrite the answers in a persona's voice through a teacher model (resumable)."""
    from training.restyle import restyle as run
    from training.restyle import sidecar

    card = _persona(persona)
    written, skipped = run(src, out, card, _teacher(teacher_backend, teacher_model), batch_size)
    typer.echo(f"wrote {written} restyled records to {out}", err=True)
    if skipped:
        typer.echo(f"skipped {skipped} records; they are in {sidecar(out, '.failed.jsonl')}",
                   err=True)


@app.command("self-instruct")
def self_instruct(
    seeds: Annotated[Path, typer.Argument(metavar="SEEDS", help="Seed tasks (seed JSONL).",
                                          parser=DatasetFile)],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="New tasks to write.",
                                        parser=OutFile)],
    n: Annotated[int, typer.Option("--n", min=1, help="How many new tasks.")],
    teacher_backend: Teacher,
    teacher_model: TeacherModel,
    max_rounds: Annotated[int | None, typer.Option(help="Default: 2*N+10.")] = None,
    threshold: Annotated[float, typer.Option(help="ROUGE-L at which a task is a duplicate.")]
    = 0.7,
) -> None:
    """Grow new tasks from seed tasks through a teacher model (resumable)."""
    from training.selfinstruct import self_instruct as run

    grown = run(seeds, out, _teacher(teacher_backend, teacher_model), n, max_rounds, threshold)
    typer.echo(f"wrote {len(grown.tasks)} new tasks to {out} in {grown.rounds} rounds "
               f"({grown.duplicates} near-duplicates, {grown.invalid} invalid dropped)", err=True)
    if len(grown.tasks) < n:
        typer.echo(f"warning: {n} were asked for; the rounds ran out", err=True)


@app.command()
def dedup(
    src: Annotated[Path, typer.Argument(metavar="IN", help="A dataset.", parser=DatasetFile)],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="The dataset without duplicates.",
                                        parser=OutFile)],
    threshold: Annotated[float, typer.Option(help="Character ROUGE-L of a near-duplicate.")]
    = 0.7,
) -> None:
    """Drop records whose prompt is a near-duplicate of an earlier one."""
    from training.dedup import dedup as run

    kept, dropped = run(src, out, threshold)
    typer.echo(f"dropped {dropped} near-duplicates; wrote {kept} records to {out}")


@app.command()
def split(
    src: Annotated[Path, typer.Argument(metavar="IN", help="A dataset.", parser=DatasetFile)],
    heldout_percent: Annotated[int, typer.Option("--heldout-percent", min=0, max=100)] = 10,
) -> None:
    """Write IN's stem + .train.jsonl / .heldout.jsonl, split by a hash of each prompt."""
    from training.dedup import split as run

    train, n_train, heldout, n_heldout = run(src, heldout_percent)
    typer.echo(f"wrote {n_train} records to {train} and {n_heldout} to {heldout}")
