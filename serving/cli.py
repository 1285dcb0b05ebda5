"""`polaris serve`: Ollama Modelfiles, registration, the server's models, an ngrok tunnel.

Loaded by the `polaris` CLI through the `polaris.commands` entry point (serving never imports
chatbot). Errors are PolarisError / InvalidInput, which the CLI turns into exit codes 1 / 2.
"""

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from serving.cli_options import not_blank, not_blank_path, persona_ids, template_families
from serving.errors import InvalidInput

app = typer.Typer(help="Serve models with Ollama: Modelfiles, registration, a tunnel.",
                  no_args_is_help=True)

PersonaOpt = Annotated[str, typer.Option("--persona", help="Persona id whose prompt is SYSTEM.",
                                         callback=not_blank(persona_ids))]
AdapterOpt = Annotated[Path | None, typer.Option(
    help="A LoRA GGUF to apply (ADAPTER).",
    parser=not_blank_path(lambda: "give a LoRA GGUF file, or leave it out for no ADAPTER"))]
FamilyOpt = Annotated[str | None, typer.Option(
    help="gemma3 | llama3 | chatml | mistral (default: read from the GGUF).",
    callback=not_blank(template_families))]
PromptOpt = Annotated[str, typer.Option(
    help="short: the one-line prompt a persona fine-tune was trained with; full: the card's "
         "whole system prompt (for untuned models).")]
ExamplesOpt = Annotated[int, typer.Option(min=0, help="Card examples as MESSAGE few-shot turns.")]
NumCtxOpt = Annotated[int, typer.Option("--num-ctx", min=256, help="Context window (num_ctx).")]
TemperatureOpt = Annotated[float, typer.Option(min=0, max=5, help="Sampling temperature.")]
HostOpt = Annotated[str | None, typer.Option(
    help="Ollama URL, may carry user:password@ (default: POLARIS_OLLAMA_HOST).",
    callback=not_blank(lambda: "give the Ollama URL, e.g. http://127.0.0.1:11434, or leave it "
                               "out for POLARIS_OLLAMA_HOST"))]


def _settings():
    from serving.settings import load_settings

    return load_settings()


def _persona(persona_id: str):
    from serving.persona import load_all_personas

    settings = _settings()
    personas = load_all_personas(settings.personas_dir, settings.data_dir)
    if persona_id not in personas:
        raise InvalidInput(f"unknown persona {persona_id!r}: choose one of {', '.join(personas)}")
    return personas[persona_id]


def _family(gguf: Path | None, family: str | None) -> str:
    from serving.modelfile import gguf_family
    from serving.templates import get_template

    if family:
        return get_template(family).family
    if gguf is None:
        raise InvalidInput("pass --family when registering FROM an Ollama model name")
    return gguf_family(gguf)


def _ollama(host: str | None, model: str = "-"):
    from serving.ollama_backend import OllamaBackend

    settings = _settings()
    if not host:
        return OllamaBackend.from_settings(settings, model)
    # An explicit --host carries its own credentials (user:password@), never the configured ones.
    return OllamaBackend(host, model, keep_alive=settings.ollama_keep_alive,
                         num_ctx=settings.n_ctx, timeout=settings.request_timeout_s)


def _warn(line: str) -> None:
    typer.echo(f"polaris: warning: {line}", err=True)


@app.command("modelfile")
def modelfile(
    gguf: Annotated[Path, typer.Argument(
        help="The model GGUF (FROM).", metavar="GGUF",
        parser=not_blank_path(lambda: "give the model's GGUF file"))],
    persona: PersonaOpt,
    adapter: AdapterOpt = None,
    family: FamilyOpt = None,
    prompt: PromptOpt = "short",
    examples: ExamplesOpt = 0,
    num_ctx: NumCtxOpt = 4096,
    temperature: TemperatureOpt = 0.8,
    out: Annotated[Path | None, typer.Option(
        help="Write here (paths become relative to it) instead of printing.",
        parser=not_blank_path(lambda: "give the Modelfile to write, or leave it out to print it"))]
    = None,
) -> None:
    """Print the Ollama Modelfile of a persona model."""
    from serving.files import atomic_write_text
    from serving.modelfile import modelfile_path, persona_spec

    card = _persona(persona)
    if not gguf.is_file() and family is None:
        raise InvalidInput(f"GGUF file {gguf} does not exist: check the path (or pass --family "
                           "to render without reading it)")
    family = _family(gguf if gguf.is_file() else None, family)
    base = out.parent if out else None
    spec = persona_spec(
        modelfile_path(gguf, base), card, family,
        adapter=modelfile_path(adapter, base) if adapter else None,
        prompt=prompt, examples=examples, num_ctx=num_ctx, temperature=temperature,
    )
    for path in (gguf, adapter):
        if path is not None and not path.is_file():
            _warn(f"{path} does not exist yet; `ollama create` needs it next to the Modelfile")
    text = spec.render(_comment(card, spec, bool(adapter)))
    if out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(out, text)
        typer.echo(f"wrote {out}", err=True)


def _comment(card, spec, has_adapter: bool) -> str:
    lines = [
        f"Polaris persona model: {card.name} ({card.id}), {spec.template.family} chat template.",
        "Rendered by `polaris serve modelfile`; re-render instead of editing by hand.",
        "Create it: ollama create NAME -f Modelfile (or `polaris serve register`).",
    ]
    if has_adapter:
        lines += [
            "ADAPTER: Ollama's own engine (gemma3 included) answers \"loras are not yet",
            "implemented\" and recent Ollama refuses ADAPTER; there, register the merged GGUF",
            "from `polaris export gguf` instead.",
        ]
    return "\n".join(lines)


@app.command("register")
def register(
    gguf: Annotated[str, typer.Argument(
        help="The model GGUF to upload, or the name of a model the server already has.",
        metavar="GGUF", callback=not_blank(
            lambda: "give a GGUF file or the name of a model the server already has"))],
    name: Annotated[str, typer.Option("--name", help="Model name on the server.",
                                      callback=not_blank(lambda: "give the model's name on "
                                                                 "the server, e.g. team-lead"))],
    persona: PersonaOpt,
    host: HostOpt = None,
    adapter: AdapterOpt = None,
    family: FamilyOpt = None,
    prompt: PromptOpt = "short",
    examples: ExamplesOpt = 0,
    num_ctx: NumCtxOpt = 4096,
    temperature: TemperatureOpt = 0.8,
    smoke: Annotated[str, typer.Option(
        help="require: fail unless a one-line chat stops on its own; warn; skip.")] = "require",
    smoke_tokens: Annotated[int, typer.Option(min=8, max=4096)] = 96,
) -> None:
    """Upload a GGUF (once) and create a persona model on an Ollama server, then smoke-chat."""
    from serving.modelfile import persona_spec
    from serving.registry_ollama import SMOKE_POLICIES
    from serving.registry_ollama import register as do_register

    if smoke not in SMOKE_POLICIES:
        raise InvalidInput(f"unknown --smoke {smoke!r}: use {', '.join(SMOKE_POLICIES)}")
    path = Path(gguf)
    if path.is_file():
        source, file = path.name, path
    elif gguf.endswith(".gguf") or "/" in gguf:
        raise InvalidInput(f"GGUF file {gguf} does not exist: check the path")
    else:
        source, file = gguf, None
    if adapter is not None and not adapter.is_file():
        raise InvalidInput(f"adapter {adapter} does not exist: check the path")
    spec = persona_spec(source, _persona(persona), _family(file, family), adapter=adapter and
                        adapter.name, prompt=prompt, examples=examples, num_ctx=num_ctx,
                        temperature=temperature)
    backend = _ollama(host, name)
    result = do_register(backend, name, spec, gguf=file, adapter=adapter,
                         progress=lambda line: typer.echo(line, err=True), smoke=smoke,
                         smoke_tokens=smoke_tokens)
    state = "registered" if result.changed else "already registered (unchanged)"
    typer.echo(f"{result.name}: {state} on {backend.host}")


@app.command("models")
def models(
    host: HostOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list.")] = False,
) -> None:
    """List the models on the Ollama server (loaded ones are in memory now)."""
    listed = _ollama(host).models()
    if as_json:
        typer.echo(json.dumps([
            {"name": m.name, "size_bytes": m.size_bytes, "loaded": m.loaded, "details": m.details}
            for m in listed
        ], ensure_ascii=False))
        return
    if not listed:
        typer.echo("no models on the server: `polaris serve register` or `ollama pull` one")
    for m in listed:
        size = f"{m.size_bytes / 1e6:,.0f} MB" if m.size_bytes else "?"
        quant = m.details.get("quantization_level", "")
        typer.echo(f"{m.name:<32} {size:>10} {quant:<8} {'loaded' if m.loaded else ''}".rstrip())


@app.command("tunnel")
def tunnel(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Local port to expose.")] = 11434,
    insecure: Annotated[bool, typer.Option(
        help="No basic auth: anyone with the URL can use the server.")] = False,
    username: Annotated[str, typer.Option(help="Basic-auth user name.", callback=not_blank(
        lambda: "give a user name without ':', or leave it out for polaris"))] = "polaris",
    minutes: Annotated[float, typer.Option(
        min=0, help="Close the tunnel after this long (0: at Ctrl-C).")] = 0,
) -> None:
    """Expose localhost:PORT (Ollama by default) through ngrok; needs NGROK_AUTHTOKEN."""
    from serving.tunnel import hold, open_tunnel

    if insecure:
        _warn("--insecure: the tunnel has no password; anyone who finds the URL can use "
              "this server (and its GPU)")
    opened = open_tunnel(port, insecure=insecure, username=username)
    typer.echo(f"public URL: {opened.public_url}  ->  localhost:{port}")
    if opened.password:
        typer.echo(f"basic auth: {opened.username} / {opened.password}  (shown once)")
    typer.echo("for an Ollama tunnel, put this line in the app's .env (or export it):")
    typer.echo(opened.host_line)
    typer.echo("Ctrl-C closes the tunnel.", err=True)
    hold(opened, minutes)
