"""llama.cpp's HF → GGUF converters, taken from the pinned llama-cpp-python sdist.

The installed llama-cpp-python has no converter, so `make converter` downloads the sdist of the
same version into an ignored cache. Running its scripts with its own vendored gguf-py (not the
PyPI gguf, which is too old for them) keeps the converter and the runtime in step.
"""

import os
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from serving.errors import PolarisError

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "llama-cpp-sdist"
ENV = "POLARIS_LLAMA_CPP_DIR"  # a llama.cpp source folder to use instead of the cache


class ConverterMissing(PolarisError):
    """The llama.cpp converter is not set up; the message says how to fetch it."""


class ConversionFailed(PolarisError):
    """A converter script ran and failed; the message carries the end of its output."""


def llama_cpp_version() -> str:
    try:
        return version("llama-cpp-python")
    except PackageNotFoundError:
        raise ConverterMissing(
            "llama-cpp-python is not installed: run `make setup` (it also fetches the converter)"
        ) from None


def find_llama_cpp() -> Path:
    """The llama.cpp folder holding convert_hf_to_gguf.py and gguf-py."""
    if os.environ.get(ENV):
        folder = Path(os.environ[ENV])
    else:
        folder = CACHE / f"llama_cpp_python-{llama_cpp_version()}" / "vendor" / "llama.cpp"
    needed = ["convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "gguf-py/gguf/__init__.py"]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise ConverterMissing(
            f"the llama.cpp converter is missing or incomplete in {folder} (no "
            f"{', '.join(missing)}): run `make converter` to fetch the llama-cpp-python sdist"
        )
    return folder


def run_script(script: str, args: list[str]) -> None:
    """Run one of llama.cpp's Python scripts with its vendored gguf-py."""
    folder = find_llama_cpp()
    env = {**os.environ, "PYTHONPATH": str(folder / "gguf-py")}
    done = subprocess.run([sys.executable, str(folder / script), *args], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise ConversionFailed(f"{script} failed (exit {done.returncode}):\n{tail}")


def convert_hf(model_dir: Path, outfile: Path, outtype: str = "f16") -> Path:
    """A HF model folder → one GGUF file."""
    run_script("convert_hf_to_gguf.py",
               [str(model_dir), "--outfile", str(outfile), "--outtype", outtype])
    return outfile


def convert_lora(adapter_dir: Path, base_dir: Path, outfile: Path, outtype: str = "f16") -> Path:
    """A peft LoRA adapter → a GGUF adapter that llama.cpp applies at load time."""
    run_script("convert_lora_to_gguf.py",
               [str(adapter_dir), "--base", str(base_dir), "--outfile", str(outfile),
                "--outtype", outtype])
    return outfile
