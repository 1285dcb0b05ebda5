"""`polaris eval persona ...` and `polaris eval judge ...` (registered through the
polaris.commands entry point)."""

from pathlib import Path
from typing import Annotated

import typer

from serving.cli_options import backends, not_blank, not_blank_path, persona_ids, template_families

app = typer.Typer(help="Evaluate persona models on the held-out split.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Evaluate persona models on the held-out split."""


@app.command()
def persona(
    model: Annotated[Path, typer.Option("--model", help="The base GGUF file.",
                                        parser=not_blank_path(lambda: "give the base .gguf file"))],
    lora: Annotated[Path | None, typer.Option(
        "--lora", help="A GGUF LoRA for the tuned model (without it only the base is reported).",
        parser=not_blank_path(lambda: "give a GGUF LoRA (`polaris export lora-gguf`), or leave "
                                      "it out to report the base model only"))] = None,
    personas: Annotated[str | None, typer.Option(
        "--personas", help="Comma-separated critic ids (default: the five starting critics).",
        callback=not_blank(lambda: persona_ids().replace("one of", "some of") + ", or leave it "
                                   "out for the five starting critics", sep=","))]
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
        "--compare-persona", help="The critic of the strategy comparison table.",
        callback=not_blank(persona_ids))] = "retired-developer",
    out: Annotated[Path, typer.Option(
        "--out", help="Folder for report.json and report.md.",
        parser=not_blank_path(lambda: "give a folder, or leave it out for runs/eval"))]
    = Path("runs/eval"),
    n_ctx: Annotated[int, typer.Option("--n-ctx", min=256)] = 2048,
    threads: Annotated[int | None, typer.Option("--threads", min=1,
                                                help="CPU threads for llama.cpp.")] = None,
    template: Annotated[str | None, typer.Option(
        "--template", help="Chat template family (default: detected from the GGUF).",
        callback=not_blank(template_families))] = None,
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


@app.command()
def judge(
    backend: Annotated[str | None, typer.Option(
        "--backend", help="embedded | ollama | openai (default: POLARIS_JUDGE_BACKEND, "
                          "else POLARIS_BACKEND).",
        callback=not_blank(lambda: backends("POLARIS_JUDGE_BACKEND (else POLARIS_BACKEND)")))]
    = None,
    model: Annotated[str | None, typer.Option(
        "--model", help="GGUF file or model name (default: POLARIS_JUDGE_MODEL, else the "
                        "backend's default).",
        callback=not_blank(lambda: "name a GGUF file or the backend's model (`polaris doctor` "
                                   "lists them), or leave it out for POLARIS_JUDGE_MODEL"))]
    = None,
    data: Annotated[Path | None, typer.Option(
        "--data", help="Labelled debates (default: training/data/judge/debates.jsonl).",
        parser=not_blank_path(lambda: "give a labelled debates JSONL file, or leave it out for "
                            "training/data/judge/debates.jsonl"))] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1,
                                              help="Judge only the first N debates.")] = None,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=32)] = 512,
    retries: Annotated[int, typer.Option("--retries", min=0)] = 2,
    out: Annotated[Path, typer.Option(
        "--out", help="Folder for judge-report.json/.md.",
        parser=not_blank_path(lambda: "give a folder, or leave it out for runs/eval-judge"))]
    = Path("runs/eval-judge"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Score a judge model on the labelled debates: score correlation and state agreement."""
    import json

    from serving.backend import create_backend
    from serving.persona import load_personas
    from serving.settings import load_settings
    from training.judge_eval import DEFAULT_SET, evaluate_judge, load_debates, write_report

    settings = load_settings()
    kind = backend or settings.judge_backend or settings.backend
    chosen = create_backend(kind, settings, model or settings.judge_model)
    debates = load_debates(data or DEFAULT_SET, limit)
    report = evaluate_judge(chosen, debates, load_personas(), max_tokens=max_tokens,
                            retries=retries,
                            progress=lambda line: typer.echo(line, err=True))
    json_path, md_path = write_report(report, out)
    if as_json:
        metrics = {key: getattr(report, key) for key in (
            "backend", "model", "debates", "critics", "failed", "pearson", "spearman", "mae",
            "state_agreement", "resolved_agreement", "mean_attempts", "seconds")}
        typer.echo(json.dumps(metrics, ensure_ascii=False))
    else:
        typer.echo(md_path.read_text(encoding="utf-8"), nl=False)
        typer.echo(f"report: {md_path} ({json_path.name})", err=True)
