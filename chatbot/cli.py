"""The `polaris` command line."""

import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer

from serving.cli_options import not_blank as _not_blank
from serving.errors import InvalidInput, PolarisError

app = typer.Typer(
    name="polaris", help="Polaris (북극성): rehearse a big decision against critic personas.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)
personas_app = typer.Typer(help="Critic persona cards.", no_args_is_help=True)
sessions_app = typer.Typer(help="Stored debate sessions.", no_args_is_help=True)
app.add_typer(personas_app, name="personas")
app.add_typer(sessions_app, name="sessions")
# Other packages add command groups (e.g. training's `polaris data`) through entry points, so
# the product does not import them.
for _plugin in entry_points(group="polaris.commands"):
    try:
        app.add_typer(_plugin.load(), name=_plugin.name)
    except ImportError as _exc:  # a broken plugin must not take the whole CLI down
        sys.stderr.write(f"polaris: warning: `polaris {_plugin.name}` is unavailable: {_exc}\n")

APP_FILE = Path(__file__).parent / "app" / "main.py"


def _strategies() -> str:
    from serving.settings import STRATEGIES

    return f"use one of {', '.join(STRATEGIES)}"


def _backends() -> str:
    from serving.backend import available_backends

    return f"use one of {', '.join(available_backends())}, or leave it out for POLARIS_BACKEND"


def _persona_ids() -> str:
    return f"use one of {', '.join(_engine_personas())} (`polaris personas list`)"


STRATEGY = _not_blank(_strategies)
BACKEND = _not_blank(_backends)
MODEL = _not_blank(lambda: "name a GGUF file or the backend's model (`polaris doctor` lists "
                           "them), or leave it out for POLARIS_MODEL")
PERSONA = _not_blank(_persona_ids)


def _settings():
    from serving.settings import load_settings

    return load_settings()


def _engine():
    from chatbot.engine import ChatEngine

    return ChatEngine(_settings())


def _store():
    from chatbot.store import Store

    return Store(_settings().database_url)


def _write_or_print(text: str, out: Path | None) -> None:
    from serving.files import atomic_write_text

    if out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(out, text)
        typer.echo(f"wrote {out}", err=True)


@app.command()
def run(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8501,
    host: Annotated[str, typer.Option(help="Address to bind.", callback=_not_blank(
        lambda: "give an address such as 127.0.0.1 (0.0.0.0 listens on every interface)"))]
    = "127.0.0.1",
) -> None:
    """Start the Streamlit UI."""
    _settings()  # fail fast on bad settings, before Streamlit starts
    args = [
        sys.executable, "-m", "streamlit", "run", str(APP_FILE),
        "--server.port", str(port), "--server.address", host, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        "--client.toolbarMode", "minimal",
    ]
    typer.echo(f"Polaris: http://{host}:{port}", err=True)
    os.execv(sys.executable, args)


@app.command()
def chat(
    persona: Annotated[str, typer.Argument(help="Persona id (see `polaris personas list`).",
                                           metavar="PERSONA", callback=PERSONA)],
    message: Annotated[str, typer.Argument(help="What you say to the critic.", metavar="MESSAGE")],
    goal: Annotated[str | None, typer.Option(help="Your North Star, for a new session.")] = None,
    session: Annotated[int | None, typer.Option(help="Continue this session id.")] = None,
    strategy: Annotated[str | None, typer.Option(
        help="plain | system | fewshot | finetuned", callback=STRATEGY)] = None,
    backend: Annotated[str | None, typer.Option(
        help="embedded | ollama | openai", callback=BACKEND)] = None,
    model: Annotated[str | None, typer.Option(help="GGUF file or model name.",
                                              callback=MODEL)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Say MESSAGE to a critic and print the reply as it streams."""
    from chatbot.engine import clean_user_text
    from serving.prompting import GoalCard

    engine = _engine()
    engine.persona(persona)
    message = clean_user_text(message)  # refused before any session is created
    if session is None:
        chat_session = engine.start_session(
            [persona], backend=backend, model=model, strategy=strategy,
            goal=GoalCard(goal) if goal else None,
        )
    else:
        chat_session = engine.store.get_session(session)
        if backend or model or strategy:
            chat_session = engine.store.update_session(
                session, **{k: v for k, v in
                            (("backend", backend), ("model", model), ("strategy", strategy)) if v})
    engine.send(chat_session.id, message)
    stream = engine.reply(chat_session.id, persona)
    try:
        for piece in stream:
            if not as_json:
                sys.stdout.write(piece)
                sys.stdout.flush()
    finally:
        if not as_json:
            sys.stdout.write("\n")
    outcome = stream.outcome
    stats = outcome.stats
    if as_json:
        typer.echo(json.dumps({
            "reply": outcome.message.content,
            "persona": persona,
            "session_id": chat_session.id,
            "backend": chat_session.backend,
            "model": outcome.message.model,
            "strategy": chat_session.strategy,
            "tokens": stats.completion_tokens if stats else None,
            "ttft_s": stats.ttft_s if stats else None,
            "tok_per_s": stats.tok_per_s if stats else None,
            "stop_reason": stats.stop_reason if stats else None,
        }, ensure_ascii=False))


@app.command()
def compare(
    persona: Annotated[str | None, typer.Option(help="Persona id of the critic.",
                                                callback=PERSONA)] = None,
    message: Annotated[str | None, typer.Option(help="The user message to compare.")] = None,
    models: Annotated[str | None, typer.Option(
        help="Comma-separated models; backend:model picks the backend "
             "(e.g. embedded:gemma-3-270m-q4_k_m.gguf,ollama:gemma3-critic). "
             "Default: the configured model.",
        callback=_not_blank(lambda: "give models separated by commas, e.g. "
                                    "embedded:gemma-3-270m-q4_k_m.gguf,ollama:gemma3-critic, "
                                    "or leave it out for POLARIS_MODEL"))] = None,
    strategies: Annotated[str, typer.Option(
        help="Comma-separated: plain,system,fewshot,finetuned",
        callback=_not_blank(lambda: _strategies().replace("one of", "some of")))]
    = "plain,system,fewshot,finetuned",
    backend: Annotated[str | None, typer.Option(
        help="Backend for models given without a prefix (default: POLARIS_BACKEND).",
        callback=BACKEND)] = None,
    fmt: Annotated[str, typer.Option("--format", help="md | csv",
                                     callback=_not_blank(lambda: "use md or csv"))] = "md",
    out: Annotated[Path | None, typer.Option(help="Write the table to this file.")] = None,
    title: Annotated[str, typer.Option(help="A name for this comparison.")] = "",
    export: Annotated[int | None, typer.Option(
        help="Print a stored comparison (by id) instead of running a new one.")] = None,
) -> None:
    """Ask one critic the same MESSAGE with several models × strategies; print the table."""
    from chatbot.compare import (
        FORMATS,
        Comparer,
        answer_label,
        export_comparison,
        file_text,
        parse_targets,
    )

    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}: use md or csv")
    settings = _settings()
    comparer = Comparer(settings)
    if export is None:
        if not persona or message is None:
            raise InvalidInput("compare needs --persona ID and --message TEXT "
                               "(or --export ID for a stored comparison)")
        targets = parse_targets(models or settings.model, backend or settings.backend)
        comparison = comparer.start(persona, message, targets, strategies.split(","),
                                    title=title)
        total = len(comparer.pending(comparison.id))
        typer.echo(f"comparison {comparison.id}: {total} answers", err=True)
        done = [0]

        def progress(answer) -> None:
            done[0] += 1
            state = "ok" if answer.status == "complete" else answer.status
            detail = f"{answer.tokens} tokens" if answer.tokens is not None else answer.error
            typer.echo(f"[{done[0]}/{total}] {answer_label(answer)} · {answer.strategy}: "
                       f"{state} ({detail})", err=True)

        answers = comparer.run(comparison.id, on_answer=progress)
        export = comparison.id
    else:
        answers = comparer.store.comparison_answers(export)
    text = export_comparison(comparer.store, export, fmt, comparer.personas)
    _write_or_print(file_text(text, fmt) if out else text, out)
    failed = [a for a in answers if a.status == "error"]
    if failed:
        raise PolarisError(f"{len(failed)} of {len(answers)} answers failed; first: "
                           f"{answer_label(failed[0])} · {failed[0].strategy}: {failed[0].error}")


@personas_app.command("list")
def personas_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the critics."""
    personas = _engine_personas()
    if as_json:
        typer.echo(json.dumps([
            {"id": p.id, "name": p.name, "register": p.speech, "tone": p.tone, "role": p.role}
            for p in personas.values()
        ], ensure_ascii=False))
        return
    for p in personas.values():
        typer.echo(f"{p.id:<24} {p.name} ({p.speech}, {p.tone}) — {p.role}")


def _engine_personas():
    from serving.persona import load_all_personas

    settings = _settings()
    return load_all_personas(settings.personas_dir, settings.data_dir)


def _persona(persona_id: str):
    personas = _engine_personas()
    if persona_id not in personas:
        raise InvalidInput(
            f"unknown persona {persona_id!r}: choose one of {', '.join(personas)}")
    return personas[persona_id]


@personas_app.command("show")
def personas_show(persona_id: Annotated[str, typer.Argument(metavar="ID", callback=PERSONA)],
                  as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show one card."""
    from serving.persona import dump_persona

    persona = _persona(persona_id)
    if as_json:
        typer.echo(persona.model_dump_json(indent=2, exclude_none=True))
    else:
        typer.echo(dump_persona(persona), nl=False)


@personas_app.command("export")
def personas_export(
    persona_id: Annotated[str, typer.Argument(metavar="ID", callback=PERSONA)],
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Export a card as Character Card V2 JSON."""
    from chatbot.charcard import card_json, to_card

    _write_or_print(card_json(to_card(_persona(persona_id))), out)


@personas_app.command("import")
def personas_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    force: Annotated[bool, typer.Option(help="Replace a card with the same id.")] = False,
) -> None:
    """Import a Character Card V2 JSON file (or one of our YAML cards)."""
    from chatbot.charcard import read_card
    from serving.persona import load_persona, save_persona

    settings = _settings()
    persona = load_persona(file) if file.suffix in (".yaml", ".yml") else read_card(file)
    if persona.id in _engine_personas() and not force:
        raise InvalidInput(f"a persona with id {persona.id!r} already exists: use --force to replace it")
    path = save_persona(persona, settings.personas_dir or settings.data_dir / "personas")
    typer.echo(f"imported {persona.id} ({persona.name}) into {path}")


@sessions_app.command("list")
def sessions_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List sessions, newest first."""
    summaries = _store().list_sessions()
    if as_json:
        typer.echo(json.dumps([
            {"id": s.id, "title": s.title, "personas": s.personas, "backend": s.backend,
             "model": s.model, "strategy": s.strategy, "goal": s.goal_title,
             "messages": s.messages, "updated_at": s.updated_at.isoformat()}
            for s in summaries
        ], ensure_ascii=False))
        return
    if not summaries:
        typer.echo("no sessions yet: start one with `polaris chat` or `polaris run`")
    for s in summaries:
        typer.echo(f"{s.id:>5}  {s.updated_at:%Y-%m-%d %H:%M}  {s.messages:>3} msgs  "
                   f"{','.join(s.personas)}  {s.title}")


@sessions_app.command("show")
def sessions_show(session_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Print a session as Markdown."""
    from chatbot.export import session_markdown

    typer.echo(session_markdown(_store(), session_id, _engine_personas()))


@sessions_app.command("export")
def sessions_export(
    session_id: Annotated[int, typer.Argument(metavar="ID")],
    fmt: Annotated[str, typer.Option("--format", help="md | json",
                                     callback=_not_blank(lambda: "use md or json"))] = "md",
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Export a session as Markdown or JSON."""
    from chatbot.export import session_json, session_markdown

    if fmt not in ("md", "json"):
        raise InvalidInput(f"unknown format {fmt!r}: use md or json")
    store = _store()
    text = (session_json(store, session_id) if fmt == "json"
            else session_markdown(store, session_id, _engine_personas()))
    _write_or_print(text, out)


@sessions_app.command("delete")
def sessions_delete(session_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Delete a session and its messages."""
    _store().delete_session(session_id)
    typer.echo(f"deleted session {session_id}")


@app.command()
def review(
    session_id: Annotated[int, typer.Argument(metavar="SESSION_ID")],
    out: Annotated[Path | None, typer.Option(help="Write the Markdown to this file.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the review's data as JSON.")]
    = False,
    update_goal: Annotated[bool, typer.Option(
        "--update-goal", help="Add the rebuttals the critics accepted to the goal's evidence.")]
    = False,
) -> None:
    """Write (and save) the session's review: strongest/weakest rebuttals, open objections,
    evidence that would have helped, homework."""
    from chatbot.review import goal_update, write_review

    store = _store()
    saved = write_review(store, session_id, _engine_personas())
    if update_goal and saved.data.get("goal_id"):
        goal = store.get_goal(saved.data["goal_id"])
        if (evidence := goal_update(goal.evidence, saved.data)) is not None:
            store.update_goal(goal.id, evidence=evidence)
            typer.echo(f"updated the evidence of goal {goal.id}", err=True)
    if as_json:
        typer.echo(json.dumps(saved.data, ensure_ascii=False))
    else:
        _write_or_print(saved.markdown, out)


@app.command()
def doctor() -> None:
    """Check settings, database, personas, backends and chat templates."""
    from chatbot.doctor import run_checks

    ok = True
    for check in run_checks(_settings()):
        mark = "ok  " if check.ok else ("warn" if check.optional else "FAIL")
        typer.echo(f"[{mark}] {check.name}: {check.detail}")
        ok = ok and (check.ok or check.optional)
    raise typer.Exit(0 if ok else 1)


def main(argv: list[str] | None = None) -> int:
    """Entry point: exit 2 with one line on bad input, 1 on other failures."""

    try:
        result = app(args=argv, prog_name="polaris", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except typer.TyperException as exc:  # typer's own usage errors (exit code 2)
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.stderr.write(exc.format_message() + "\n")
            raise SystemExit(2) from None
        _fail(exc.format_message(), exc.exit_code)
    except typer.Abort:
        _fail("aborted", 1)
    except (InvalidInput, ValueError) as exc:
        _fail(str(exc), 2)
    except PolarisError as exc:
        _fail(str(exc), 1)
    except OSError as exc:  # e.g. --out names a folder or an unwritable place
        target = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{target}{exc.strerror or exc}", 1)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    return 0


def _fail(message: str, code: int) -> None:
    line = " ".join(message.split())
    sys.stderr.write(f"polaris: error: {line}\n")
    raise SystemExit(code)


if __name__ == "__main__":
    sys.exit(main())
