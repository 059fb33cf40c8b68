"""`seqrec info`: where things are and what this machine offers."""

from __future__ import annotations

import importlib.metadata
import platform

from seqrec.settings import get_settings

LIBRARIES = ("torch", "transformers", "peft", "accelerate", "sqlmodel", "alembic", "pandas", "pyarrow", "textual")


def library_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def device_summary() -> dict:
    import torch

    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        device = f"cuda ({torch.cuda.device_count()}x {', '.join(sorted(set(names)))})"
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        device = "mps"
    else:
        device = "cpu"
    return {"device": device, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads()}


def info() -> dict:
    from seqrec import __version__

    settings = get_settings()
    return {
        "seqrec": __version__,
        "python": platform.python_version(),
        "home": str(settings.home),
        "database": settings.db_url,
        "data": str(settings.data_dir),
        "models": str(settings.models_dir),
        "runs": str(settings.runs_dir),
        **{name: library_version(name) for name in LIBRARIES},
        **device_summary(),
    }
