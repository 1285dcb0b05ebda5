"""A trained run → merged, quantized, verified GGUF files with a Modelfile and a report.

merge (peft, float32) → llama.cpp converter (f16) → base GGUF's SentencePiece vocab copied in
(when the base came from a GGUF) → quantize → verify every file → report.json / report.md.
Every file is written under a temp name and renamed once complete.
"""

import ctypes
import json
import logging
import mmap
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.errors import InvalidInput, PolarisError
from serving.files import atomic_write_text
from serving.lazy import require
from serving.templates import ChatTemplate, get_template
from training import converter, verify

# llama.cpp file types (llama.h: LLAMA_FTYPE_MOSTLY_*)
QUANTS = {"q8_0": 7, "q4_k_m": 15}

# Our chat templates as Jinja (tokenizer.chat_template), rendering exactly what
# serving/templates.py renders; tests/test_export.py holds them to that.
JINJA = {
    "gemma3": (
        "{%- set system = messages | selectattr('role', 'equalto', 'system')"
        " | map(attribute='content') | join('\\n\\n') -%}"
        "{%- set turns = messages | rejectattr('role', 'equalto', 'system') | list -%}"
        "{{- '<bos>' -}}"
        "{%- if system and (turns | length == 0 or turns[0]['role'] != 'user') -%}"
        "{{- '<start_of_turn>user\\n' + system + '<end_of_turn>\\n' -}}"
        "{%- endif -%}"
        "{%- for m in turns -%}"
        "{%- set content = system + '\\n\\n' + m['content']"
        " if loop.first and system and m['role'] == 'user' else m['content'] -%}"
        "{{- '<start_of_turn>' + ('model' if m['role'] == 'assistant' else m['role'])"
        " + '\\n' + content + '<end_of_turn>\\n' -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}"
    ),
    "llama3": (
        "{{- '<|begin_of_text|>' -}}"
        "{%- for m in messages -%}"
        "{{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content']"
        " + '<|eot_id|>' -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}"
        "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}"
        "{%- endif -%}"
    ),
    "chatml": (
        "{%- for m in messages -%}"
        "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
    ),
    "mistral": (  # the system text goes before the last user message; no generation prompt
        "{%- set system = messages | selectattr('role', 'equalto', 'system')"
        " | map(attribute='content') | join('\\n\\n') -%}"
        "{%- set turns = messages | rejectattr('role', 'equalto', 'system') | list -%}"
        "{%- set ns = namespace(last_user=-1) -%}"
        "{%- for m in turns -%}"
        "{%- if m['role'] == 'user' -%}{%- set ns.last_user = loop.index0 -%}{%- endif -%}"
        "{%- endfor -%}"
        "{{- '<s>' -}}"
        "{%- for m in turns -%}"
        "{%- if m['role'] == 'user' -%}"
        "{%- set content = system + '\\n\\n' + m['content']"
        " if loop.index0 == ns.last_user and system else m['content'] -%}"
        "{{- '[INST] ' + content + ' [/INST]' -}}"
        "{%- else -%}{{- ' ' + m['content'] + '</s>' -}}{%- endif -%}"
        "{%- endfor -%}"
    ),
}


class ExportFailed(PolarisError):
    """The export ran but produced something wrong; the message says which check failed."""


@dataclass
class Run:
    """What an SFT/DPO output folder tells the exporter."""

    folder: Path
    adapter: Path
    base_folder: Path
    template: ChatTemplate
    base_gguf: Path | None  # the GGUF the base was loaded from, whose vocab we copy


def read_run(run_dir: Path) -> Run:
    run_dir = Path(run_dir)
    info_path, adapter = run_dir / "run.json", run_dir / "adapter"
    if not info_path.is_file() or not (adapter / "adapter_config.json").is_file():
        raise InvalidInput(f"{run_dir} is not a training run (needs run.json and "
                           f"adapter/adapter_config.json): run `polaris train sft` first")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if "base_folder" not in info or "template" not in info:
        raise InvalidInput(f"{info_path} lacks base_folder or template: was it written by "
                           f"`polaris train`?")
    base_folder = Path(info["base_folder"])  # relative paths are relative to where you trained
    if not (base_folder / "config.json").is_file():
        raise InvalidInput(f"the run's base model folder {base_folder} is missing: run the "
                           f"export from the folder you trained in, or fix base_folder in "
                           f"{info_path}")
    base_model = str(info.get("config", {}).get("base_model", ""))
    base_gguf = Path(base_model) if base_model.endswith(".gguf") else None
    if base_gguf and not base_gguf.is_file():
        raise InvalidInput(f"the run's base GGUF {base_gguf} is missing (its vocabulary goes "
                           f"into the export): run `make models` or fix config.base_model")
    return Run(run_dir, adapter, base_folder, get_template(info["template"]), base_gguf)


def parse_quants(text: str) -> list[str]:
    quants = [q.strip().lower() for q in text.split(",") if q.strip()]
    unknown = [q for q in quants if q not in QUANTS]
    if unknown:
        raise InvalidInput(f"unknown quantization {', '.join(unknown)}: use any of "
                           f"{', '.join(QUANTS)} (f16 is always written)")
    return quants


# -- steps -----------------------------------------------------------------------------------

def merge(run: Run) -> tuple[Any, Any]:
    """The base with the adapter merged in (float32, even for a QLoRA run), and its tokenizer."""
    torch = require("torch", package="torch", extra="training", purpose="Export")
    transformers = require("transformers", package="transformers", extra="training",
                           purpose="Export")
    peft = require("peft", package="peft", extra="training", purpose="Export")
    base = transformers.AutoModelForCausalLM.from_pretrained(run.base_folder, dtype=torch.float32)
    model = peft.PeftModel.from_pretrained(base, run.adapter).merge_and_unload()
    model.eval()
    has_tokenizer = (run.adapter / "tokenizer_config.json").is_file()
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        run.adapter if has_tokenizer else run.base_folder)
    return model, tokenizer


def save_merged(run: Run, model: Any, tokenizer: Any, folder: Path) -> None:
    """A HF folder the converter reads, with our chat template embedded."""
    model.save_pretrained(folder)
    tokenizer.chat_template = JINJA[run.template.family]
    tokenizer.save_pretrained(folder)
    # transformers 5 does not save tokenizer.model, but the converter needs it for an SPM vocab
    for source in (run.adapter, run.base_folder):
        if (source / "tokenizer.model").is_file():
            shutil.copy(source / "tokenizer.model", folder / "tokenizer.model")
            break


def copy_vocab(exported: Path, base_gguf: Path, out: Path) -> None:
    """`exported` with the base GGUF's tokenizer.ggml.* keys instead of its own: the Gemma
    converter, lacking tokenizer.model, writes a gpt2 vocab without scores. Metadata and
    tensor infos are copied as raw bytes and the tensor data verbatim (gguf-py's reader takes
    ~15 s just to parse a 262k-token vocab)."""
    src, base = _GGUF(exported), _GGUF(base_gguf)
    if src.lengths["tokenizer.ggml.tokens"] != base.lengths["tokenizer.ggml.tokens"]:
        raise ExportFailed(f"the base GGUF {base_gguf} and the export differ in vocabulary "
                           f"size: is config.base_model the GGUF this run was trained from?")
    kvs = [raw for key, raw in src.kvs if not key.startswith("tokenizer.ggml.")]
    kvs += [raw for key, raw in base.kvs if key.startswith("tokenizer.ggml.")]
    head = struct.pack("<4sIQQ", b"GGUF", src.version, src.n_tensors, len(kvs))
    body = head + b"".join(kvs) + src.tensor_infos
    with out.open("wb") as handle, exported.open("rb") as source:
        handle.write(body + bytes(-len(body) % src.alignment))
        source.seek(src.data_start)
        shutil.copyfileobj(source, handle, 16 << 20)


_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUF scalars
_STRING, _ARRAY = 8, 9


class _GGUF:
    """The raw pieces of a GGUF file's header (format: llama.cpp's docs/gguf.md)."""

    def __init__(self, path: Path):
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0,
                                                  access=mmap.ACCESS_READ) as self.buf:
            magic, self.version, self.n_tensors, n_kv = struct.unpack_from("<4sIQQ", self.buf)
            if magic != b"GGUF":
                raise ExportFailed(f"{path} is not a GGUF file")
            pos, self.kvs, self.lengths, alignment = 24, [], {}, 32
            for _ in range(n_kv):
                key, at = self._string(pos)
                (kind,) = struct.unpack_from("<I", self.buf, at)
                end = self._skip(at + 4, kind)
                self.kvs.append((key, self.buf[pos:end]))
                if kind == _ARRAY:
                    self.lengths[key] = struct.unpack_from("<Q", self.buf, at + 8)[0]
                if key == "general.alignment":
                    (alignment,) = struct.unpack_from("<I", self.buf, at + 4)
                pos = end
            tensors_at = pos
            for _ in range(self.n_tensors):
                _, pos = self._string(pos)
                (dims,) = struct.unpack_from("<I", self.buf, pos)
                pos += 4 + 8 * dims + 4 + 8  # n_dims, dims, type, offset
            self.tensor_infos = self.buf[tensors_at:pos]
        self.alignment = alignment
        self.data_start = pos + (-pos % alignment)

    def _string(self, pos: int) -> tuple[str, int]:
        (size,) = struct.unpack_from("<Q", self.buf, pos)
        return self.buf[pos + 8:pos + 8 + size].decode("utf-8"), pos + 8 + size

    def _skip(self, pos: int, kind: int) -> int:
        if kind == _STRING:
            return pos + 8 + struct.unpack_from("<Q", self.buf, pos)[0]
        if kind == _ARRAY:
            item, count = struct.unpack_from("<IQ", self.buf, pos)
            pos += 12
            if item in _SIZES:
                return pos + _SIZES[item] * count
            for _ in range(count):
                pos = self._skip(pos, item)
            return pos
        return pos + _SIZES[kind]


def quantize(src: Path, dst: Path, quant: str, threads: int) -> None:
    llama_cpp = require("llama_cpp", package="llama-cpp-python", extra="embedded",
                        purpose="Quantizing")
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # no per-tensor log lines
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANTS[quant]
    params.nthread = threads
    code = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(),
                                          ctypes.byref(params))
    if code != 0:
        raise ExportFailed(f"llama.cpp could not quantize {src.name} to {quant} (code {code})")


def modelfile(gguf_name: str, template: ChatTemplate, num_ctx: int) -> str:
    """The Modelfile beside the export: our TEMPLATE (the same text the verification's smoke
    chat used), the end-of-turn stops and the context; persona-specific ones come from
    `polaris serve modelfile GGUF --persona ID`."""
    from serving.modelfile import ModelSpec

    spec = ModelSpec(source=f"./{gguf_name}", template=template, num_ctx=num_ctx)
    return spec.render("Ollama: ollama create NAME -f Modelfile")


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


# -- the command -----------------------------------------------------------------------------

def export_gguf(run_dir: Path, out: Path, quants: list[str], *, name: str | None = None,
                num_ctx: int = 4096, tolerance: float = 1e-2, smoke_max_tokens: int = 128,
                require_stop: bool = True, threads: int | None = None) -> dict[str, Any]:
    """Export and verify; returns the report, raises ExportFailed when a check failed."""
    torch = require("torch", package="torch", extra="training", purpose="Export")
    run = read_run(run_dir)
    converter.find_llama_cpp()  # fail before the slow part when it is not set up
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = name or run.folder.resolve().name
    threads = threads or min(os.cpu_count() or 1, 8)
    timings: dict[str, float] = {}

    started = time.perf_counter()
    model, tokenizer = merge(run)
    timings["merge"] = time.perf_counter() - started

    files = {"f16": out / f"{name}-f16.gguf"}
    files |= {quant: out / f"{name}-{quant}.gguf" for quant in quants}
    try:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=".merged-", dir=out) as merged:
            save_merged(run, model, tokenizer, Path(merged))
            converted = converter.convert_hf(Path(merged), Path(merged) / "model-f16.gguf")
            if run.base_gguf:
                copy_vocab(converted, run.base_gguf, _tmp(files["f16"]))
            else:
                shutil.move(converted, _tmp(files["f16"]))
        os.replace(_tmp(files["f16"]), files["f16"])
        timings["convert"] = time.perf_counter() - started
        started = time.perf_counter()
        for quant in quants:
            quantize(files["f16"], _tmp(files[quant]), quant, threads)
            os.replace(_tmp(files[quant]), files[quant])
        timings["quantize"] = time.perf_counter() - started
    finally:
        for path in files.values():
            _tmp(path).unlink(missing_ok=True)

    started = time.perf_counter()
    ids = verify.hf_prompt_ids(tokenizer, run.template, verify.SMOKE_MESSAGES)
    with torch.no_grad():
        hf_logits = model(torch.tensor([ids])).logits[0].numpy()
    context = min(num_ctx, getattr(model.config, "max_position_embeddings", num_ctx))
    checks = []
    for kind, path in files.items():
        checks += verify.verify_gguf(
            path, kind, tokenizer, run.template, JINJA[run.template.family], hf_logits, ids,
            tolerance=tolerance, max_tokens=smoke_max_tokens, require_stop=require_stop,
            n_ctx=min(context, 1024), threads=threads)
    timings["verify"] = time.perf_counter() - started

    primary = files[quants[0]] if quants else files["f16"]
    atomic_write_text(out / "Modelfile", modelfile(primary.name, run.template, context))
    report = {
        "run_dir": str(run.folder), "base_folder": str(run.base_folder),
        "base_gguf": str(run.base_gguf) if run.base_gguf else None,
        "template": run.template.family, "converter": converter.llama_cpp_version(),
        "files": {kind: {"path": p.name, "bytes": p.stat().st_size} for kind, p in files.items()},
        "modelfile": "Modelfile", "timings_s": timings,
    }
    verify.write_report(out, report, checks)
    failed = verify.failures(checks)
    if failed:
        names = ", ".join(f"{c.name} ({c.file})" for c in failed)
        raise ExportFailed(f"export verification failed: {names}; see {out / 'report.md'}")
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def export_lora(run_dir: Path, out_file: Path) -> Path:
    """The adapter alone as a GGUF LoRA, applied by llama.cpp at load time."""
    run = read_run(run_dir)
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    converter.convert_lora(run.adapter, run.base_folder, _tmp(out_file))
    os.replace(_tmp(out_file), out_file)
    return out_file


# -- Hugging Face hub ------------------------------------------------------------------------

def hub_token() -> str:
    """The token for pushing; checked before any slow work. Never printed."""
    hub = require("huggingface_hub", package="huggingface-hub", extra="training",
                  purpose="--push-to-hub")
    token = os.environ.get("HF_TOKEN") or hub.get_token()
    if not token:
        raise InvalidInput("--push-to-hub needs a Hugging Face write token: set HF_TOKEN "
                           "(https://huggingface.co/settings/tokens) and run again")
    return token


def model_card(repo: str, report: dict[str, Any]) -> str:
    files = "\n".join(f"- `{f['path']}` ({kind}, {f['bytes'] / 1e6:.1f} MB)"
                      for kind, f in report["files"].items())
    return (f"---\ntags: [gguf, llama.cpp, polaris]\n---\n# {repo}\n\n"
            f"A Polaris persona model (chat template: {report['template']}), merged from a LoRA "
            f"adapter and converted with llama.cpp {report['converter']}. Every file passed "
            f"Polaris's export checks (token-id parity, logits, a smoke chat): see `report.md`."
            f"\n\n{files}\n\nOllama: download the files and run "
            f"`ollama create NAME -f Modelfile`.\n")


def push_to_hub(out: Path, repo: str, token: str, report: dict[str, Any]) -> str:
    from huggingface_hub import HfApi

    atomic_write_text(out / "README.md", model_card(repo, report))
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo, exist_ok=True, repo_type="model")
        api.upload_folder(repo_id=repo, folder_path=out, repo_type="model",
                          allow_patterns=["*.gguf", "Modelfile", "report.*", "README.md"])
    except Exception as exc:  # noqa: BLE001 - hub errors vary; the message must not carry the token
        raise PolarisError(f"pushing to {repo} failed: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    return str(url)
