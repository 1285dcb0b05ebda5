"""`polaris eval persona ...` (registered through the polaris.commands entry point)."""

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Evaluate persona models on the held-out split.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Evaluate persona models on the held-out split."""


@app.command()
def persona(
    model: Annotated[Path, typer.Option("--model", help="The base GGUF file.")],
    lora: Annotated[Path | None, typer.Option("--lora", help="A GGUF LoRA for the tuned model "
                                              "(without it only the base is reported).")] = None,
    personas: Annotated[str | None, typer.Option(
        "--personas", help="Comma-separated critic ids (default: the five starting critics).")]
    = None,
    limit: Annotated[int, typer.Option("--limit", min=0,
                                       help="Generations per critic (held-out openings).")] = 5,
    ppl_limit: Annotated[int | None, typer.Option(
        "--ppl-limit", min=1, help="Held-out conversations per critic for perplexity "
                                   "(default: all).")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 96,
    temperature: Annotated[float, typer.Option("--temperature", min=0.0)] = 0.7,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    compare_persona: Annotated[str, typer.Option(
        "--compare-persona", help="The critic of the strategy comparison table.")]
    = "retired-developer",
    out: Annotated[Path, typer.Option("--out", help="Folder for report.json and report.md.")]
    = Path("runs/eval"),
    n_ctx: Annotated[int, typer.Option("--n-ctx", min=256)] = 2048,
    threads: Annotated[int | None, typer.Option("--threads", min=1,
                                                help="CPU threads for llama.cpp.")] = None,
    template: Annotated[str | None, typer.Option(
        "--template", help="Chat template family (default: detected from the GGUF).")] = None,
    prompt: Annotated[str, typer.Option(
        "--prompt", help="System prompt for perplexity and generation: short (the card's "
                         "one-line prompt, as the shipped adapter was trained) or card.")]
    = "short",
) -> None:
    """Perplexity (base vs tuned), register/stop rates and the strategy comparison table."""
    from serving.persona import STARTING_ORDER
    from training.evaluate import EvalConfig, evaluate, summary_table, write_report

    if prompt not in ("short", "card"):
        raise typer.BadParameter(f"{prompt!r}: use short or card", param_hint="--prompt")
    ids = [p.strip() for p in personas.split(",") if p.strip()] if personas else []
    config = EvalConfig(model=model, lora=lora, personas=ids or list(STARTING_ORDER),
                        limit=limit, ppl_limit=ppl_limit, max_tokens=max_tokens,
                        temperature=temperature, seed=seed, compare_persona=compare_persona,
                        n_ctx=n_ctx, threads=threads, template=template,
                        prompt=prompt)
    report = evaluate(config)
    json_path, md_path = write_report(report, out)
    typer.echo(summary_table(report))
    typer.echo(f"report: {md_path} ({json_path.name})")
