"""`polaris train sft|dpo --config FILE [key=value ...]` (registered through the
polaris.commands entry point). Also runnable as a module, e.g. on several GPUs:

    accelerate launch -m training.train_cli sft --config training/configs/t4-qlora-7b.yaml
"""

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from serving.cli_options import not_blank_path
from serving.errors import InvalidInput

app = typer.Typer(help="Fine-tune a LoRA adapter: sft, then optionally dpo.",
                  no_args_is_help=True)

ConfigFile = Annotated[Path, typer.Option(
    "--config", help="A YAML recipe (training/configs/).",
    parser=not_blank_path(lambda: "give a YAML recipe, e.g. training/configs/cpu-demo.yaml"))]
Overrides = Annotated[list[str] | None, typer.Argument(
    metavar="[KEY=VALUE]...", help="Override config keys, e.g. max_steps=20 lora.r=8.")]


def _run(kind: str, config_file: Path, overrides: list[str] | None) -> None:
    from training.config import ConfigError, load_config

    config = load_config(config_file, overrides)
    if "kind" in config.model_fields_set and config.kind != kind:
        raise ConfigError(f"{config_file} is a {config.kind} recipe: run "
                          f"`polaris train {config.kind} --config {config_file}`")
    if kind == "sft":
        from training.sft import train_sft as train
    else:
        from training.dpo import train_dpo as train
    started = time.monotonic()
    adapter = train(config)
    elapsed = time.monotonic() - started
    if os.environ.get("RANK", "0") != "0":  # under `accelerate launch` the main process reports
        return
    run = json.loads((Path(config.output_dir) / "run.json").read_text(encoding="utf-8"))
    unit = "examples" if kind == "sft" else "pairs"
    typer.echo(f"adapter: {adapter}")
    typer.echo(f"time: {elapsed:.0f} s in all, {run.get('train_seconds', 0):.0f} s training "
               f"({run.get('steps', '?')} steps)")
    typer.echo(f"data: {run['examples']} {unit} used, {run['dropped_too_long']} dropped "
               f"(longer than max_length={config.max_length})")


@app.command()
def sft(config: ConfigFile, overrides: Overrides = None) -> None:
    """Supervised fine-tuning on chat JSONL (TRL SFTTrainer, LoRA or QLoRA)."""
    _run("sft", config, overrides)


@app.command()
def dpo(config: ConfigFile, overrides: Overrides = None) -> None:
    """Preference tuning on prompt/chosen/rejected JSONL (TRL DPOTrainer), e.g. after SFT."""
    _run("dpo", config, overrides)


def main() -> None:
    """`python -m training.train_cli`: bad input is one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except typer.TyperException as exc:  # usage errors
        _fail(exc.format_message(), exc.exit_code)
    except (InvalidInput, ValueError) as exc:
        _fail(str(exc), 2)


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"polaris train: error: {' '.join(message.split())}\n")
    sys.exit(code)


if __name__ == "__main__":
    main()
