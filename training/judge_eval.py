"""How good is a judge model? Run it over the hand-labelled debates and compare.

For each debate the judge gets the labelled objections (all shown as open, with ids) and the
whole transcript, judged at once (no per-turn bounds), and answers a score and a state per
objection. Reported: Pearson and Spearman correlation of its scores with the labels, mean
absolute error, objection-state agreement (exact, and resolved-vs-open), a confusion matrix,
and how often it failed to give a usable answer.
"""

import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from serving.backend import ChatBackend
from serving.judge import (
    RESOLVED,
    STATES,
    Critic,
    CriticLedger,
    JudgeError,
    Objection,
    Rules,
    Turn,
    judge,
)
from serving.persona import Persona
from serving.prompting import GoalCard
from training.formats import Debate, load

DEFAULT_SET = Path(__file__).parent / "data" / "judge" / "debates.jsonl"
WHOLE_DEBATE = Rules(max_step=None, transitions=False)


@dataclass
class CriticResult:
    debate: str
    critic: str
    label_score: int
    score: int | None
    label_states: list[str]
    states: list[str] | None
    error: str | None = None


@dataclass
class JudgeReport:
    backend: str
    model: str
    debates: int
    critics: int
    failed: int
    pearson: float | None
    spearman: float | None
    mae: float | None
    state_agreement: float | None
    resolved_agreement: float | None
    confusion: dict[str, dict[str, int]]
    mean_attempts: float
    seconds: float
    results: list[CriticResult] = field(default_factory=list)


def debate_request(debate: Debate, personas: dict[str, Persona]):
    """The judge's inputs for a labelled debate: goal, critics, turns, and a ledger holding
    the labelled objections, all open, with ids o1, o2, ..."""
    goal = GoalCard(debate.goal.title, debate.goal.description, debate.goal.constraints,
                    debate.goal.evidence)
    critics = [Critic.from_persona(personas[c]) if c in personas else Critic(c, c)
               for c in debate.critics]
    turns = [Turn(t.role, t.content, t.persona) for t in debate.turns]
    ledger = {
        critic: CriticLedger(0, tuple(Objection(f"o{i}", o.text, o.category)
                                      for i, o in enumerate(label.objections, 1)))
        for critic, label in debate.labels.items()
    }
    return goal, critics, turns, ledger


def evaluate_judge(backend: ChatBackend, debates: list[Debate], personas: dict[str, Persona],
                   *, max_tokens: int = 512, retries: int = 2,
                   progress: Callable[[str], None] | None = None) -> JudgeReport:
    started = time.perf_counter()
    results: list[CriticResult] = []
    attempts: list[int] = []
    for debate in debates:
        goal, critics, turns, ledger = debate_request(debate, personas)
        try:
            verdict = judge(backend, goal=goal, critics=critics, turns=turns, ledger=ledger,
                            rules=WHOLE_DEBATE, max_tokens=max_tokens, retries=retries)
            error = None
            attempts.append(verdict.attempts)
        except JudgeError as exc:
            verdict, error = None, str(exc)
            attempts.append(retries + 1)
        for critic, label in debate.labels.items():
            got = verdict.ledger[critic] if verdict else None
            results.append(CriticResult(
                debate.id, critic, label.score, got.score if got else None,
                [o.state for o in label.objections],
                [o.state for o in got.objections] if got else None, error))
        if progress:
            progress(f"{debate.id}: {'failed' if error else 'ok'}")
    return summarise(backend.kind, model_label(backend), len(debates), results, attempts,
                     time.perf_counter() - started)


def model_label(backend: ChatBackend) -> str:
    """The model as the report names it: with its LoRA adapter, which changes the judge."""
    lora = getattr(backend, "lora_path", None)
    return f"{backend.model} + {lora.name}" if lora else backend.model


def summarise(kind: str, model: str, debates: int, results: list[CriticResult],
              attempts: list[int], seconds: float) -> JudgeReport:
    judged = [r for r in results if r.score is not None]
    labels = [r.label_score for r in judged]
    scores = [r.score for r in judged]
    pairs = [(want, got) for r in judged for want, got in zip(r.label_states, r.states or [])]
    confusion = {want: {got: 0 for got in STATES} for want in STATES}
    for want, got in pairs:
        confusion[want][got] += 1
    return JudgeReport(
        backend=kind, model=model, debates=debates, critics=len(results),
        failed=len(results) - len(judged),
        pearson=_correlation(labels, scores),
        spearman=_correlation(_ranks(labels), _ranks(scores)),
        mae=statistics.fmean(abs(a - b) for a, b in zip(labels, scores)) if judged else None,
        state_agreement=_share(want == got for want, got in pairs),
        resolved_agreement=_share((want in RESOLVED) == (got in RESOLVED) for want, got in pairs),
        confusion=confusion,
        mean_attempts=statistics.fmean(attempts) if attempts else 0.0,
        seconds=seconds, results=results,
    )


def _correlation(xs: list[float], ys: list[float]) -> float | None:
    """Pearson's r; None where it is undefined (fewer than 2 pairs, or a constant side)."""
    try:
        return statistics.correlation(xs, ys)
    except statistics.StatisticsError:
        return None


def _ranks(values: list[float]) -> list[float]:
    """Average ranks (ties share their mean rank), so Pearson on ranks is Spearman's rho."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _share(flags) -> float | None:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else None


def load_debates(path: Path = DEFAULT_SET, limit: int | None = None) -> list[Debate]:
    debates = list(load(path, expect="debate").records)
    return debates[:limit] if limit else debates


def report_markdown(report: JudgeReport) -> str:
    def num(value: float | None, digits: int = 2) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    lines = [
        f"# Judge evaluation: {report.backend} / {report.model}", "",
        (f"{report.debates} debates, {report.critics} critic labels, "
        f"{report.failed} without a usable answer, {report.seconds:.0f} s, "
        f"{report.mean_attempts:.2f} tries per debate."), "",
        "| metric | value |", "|---|---|",
        f"| score Pearson r | {num(report.pearson)} |",
        f"| score Spearman ρ | {num(report.spearman)} |",
        f"| score mean absolute error | {num(report.mae, 1)} |",
        f"| objection state agreement | {num(report.state_agreement)} |",
        f"| resolved-vs-open agreement | {num(report.resolved_agreement)} |", "",
        "Objection states (rows: label, columns: judge):", "",
        "| label \\ judge | " + " | ".join(STATES) + " |", "|---|" + "---|" * len(STATES),
    ]
    for want in STATES:
        lines.append(f"| {want} | " + " | ".join(str(report.confusion[want][got])
                                                  for got in STATES) + " |")
    counts = Counter(r.error for r in report.results if r.error)
    if counts:
        lines += ["", "Failures:", *(f"- {n} × {error}" for error, n in counts.most_common(5))]
    return "\n".join(lines) + "\n"


def write_report(report: JudgeReport, out: Path) -> tuple[Path, Path]:
    from serving.files import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    json_path = atomic_write_text(out / "judge-report.json",
                                  json.dumps(asdict(report), ensure_ascii=False, indent=2))
    md_path = atomic_write_text(out / "judge-report.md", report_markdown(report))
    return json_path, md_path
