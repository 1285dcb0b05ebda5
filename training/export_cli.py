"""`polaris export ...`: trained runs to GGUF (registered through the polaris.commands entry point)."""

from pathlib import Path
from typing import Annotated

import typer

from serving.cli_options import not_blank, not_blank_path

app = typer.Typer(help="Export a trained run: merged + verified GGUF files, or a GGUF LoRA.",
                  no_args_is_help=True)

RunDir = Annotated[Path, typer.Argument(
    metavar="RUN_DIR", help="An SFT/DPO output folder (adapter/ and run.json).",
    parser=not_blank_path(lambda: "give a training run folder (`polaris train sft` writes one)"))]


@app.command()
def gguf(
    run_dir: RunDir,
    out: Annotated[Path, typer.Option(
        "--out", help="Folder for the GGUF files and report.",
        parser=not_blank_path(lambda: "give a folder for the GGUF files"))],
    quant: Annotated[str, typer.Option("--quant", help="Comma-separated: q8_0, q4_k_m.")]
    = "q8_0,q4_k_m",
    push_to_hub: Annotated[str | None, typer.Option(
        "--push-to-hub", metavar="REPO", help="Upload to this HF repo (needs HF_TOKEN).",
        callback=not_blank(lambda: "give a Hugging Face repo such as user/polaris-critic, or "
                                   "leave it out to keep the files local"))] = None,
    name: Annotated[str | None, typer.Option(
        help="File name stem (default: the run folder's).",
        callback=not_blank(lambda: "give a file name stem, or leave it out for the run "
                                   "folder's name"))] = None,
    num_ctx: Annotated[int, typer.Option("--num-ctx", min=256, help="Modelfile num_ctx.")] = 4096,
    tolerance: Annotated[float, typer.Option(help="Max f16 logit error, relative to the largest "
                                                  "logit.")] = 1e-2,
    smoke_tokens: Annotated[int, typer.Option("--smoke-tokens", min=1,
                                              help="Token limit of the smoke chat.")] = 128,
    require_stop: Annotated[bool, typer.Option("--require-stop/--allow-no-stop",
                                               help="Fail when the smoke chat does not stop.")]
    = True,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for llama.cpp.")] = None,
) -> None:
    """Merge the adapter, convert to GGUF (f16 + quantized), verify, and write a Modelfile."""
    from training.export import export_gguf, hub_token, parse_quants
    from training.export import push_to_hub as push

    quants = parse_quants(quant)
    token = hub_token() if push_to_hub else None  # before the slow part
    report = export_gguf(run_dir, out, quants, name=name, num_ctx=num_ctx, tolerance=tolerance,
                         smoke_max_tokens=smoke_tokens, require_stop=require_stop,
                         threads=threads)
    for kind, info in report["files"].items():
        typer.echo(f"{out / info['path']}  ({kind}, {info['bytes'] / 1e6:.1f} MB)")
    typer.echo(f"verified: {out / 'report.md'}")
    if push_to_hub and token:
        typer.echo(f"pushed: {push(out, push_to_hub, token, report)}")


@app.command("lora-gguf")
def lora_gguf(
    run_dir: RunDir,
    out: Annotated[Path, typer.Option(
        "--out", help="The GGUF adapter file to write.",
        parser=not_blank_path(lambda: "give the GGUF adapter file to write"))],
) -> None:
    """The adapter alone as a GGUF LoRA (for POLARIS_LORA_PATH with the base GGUF)."""
    from training.export import export_lora

    path = export_lora(run_dir, out)
    typer.echo(f"{path}  ({path.stat().st_size / 1e6:.1f} MB)")
