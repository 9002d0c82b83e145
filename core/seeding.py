"""The seeding recipe a run used, and what it lacks: read from ``run.settings["seeding"]``.

The seed posts' recipe for reproducible training: seed Python's ``random``,
numpy, torch and CUDA; ``cudnn.deterministic = True``; ``cudnn.benchmark =
False``; ``torch.use_deterministic_algorithms(True)``; and
``CUBLAS_WORKSPACE_CONFIG`` (``:4096:8`` or ``:16:8``) for deterministic cuBLAS.
Capture records each of these (``core/training_run.py``); this module, which
never imports torch, says which are missing, for ``show``, the Run page and the
comparison. Older runs have no record: that is said too, never guessed.
"""

from __future__ import annotations

from typing import Any

SETTINGS_KEY = "seeding"
RNGS = ("random", "numpy", "torch", "cuda")
_CUBLAS_OK = (":4096:8", ":16:8", ":4096:2")


def missing(recipe: dict[str, Any]) -> list[str]:
    """What the recorded recipe lacks, one short phrase each, in the recipe's order (empty: complete)."""
    out = []
    seeded = recipe.get("seeded") if isinstance(recipe.get("seeded"), dict) else {}
    for rng in RNGS:
        if rng == "cuda" and not recipe.get("cuda_available"):
            continue  # no CUDA here: nothing to seed
        if seeded.get(rng) is not True:
            out.append(f"{rng} not seeded")
    if recipe.get("cudnn_deterministic") is not True:
        out.append("cudnn.deterministic is off")
    if recipe.get("cudnn_benchmark") is not False:
        out.append("cudnn.benchmark is on")
    if recipe.get("deterministic_algorithms") is not True:
        out.append("use_deterministic_algorithms is off")
    if recipe.get("cublas_workspace_config") not in _CUBLAS_OK:
        value = recipe.get("cublas_workspace_config")
        out.append("CUBLAS_WORKSPACE_CONFIG is unset" if value is None
                   else f"CUBLAS_WORKSPACE_CONFIG is {str(value)[:40]!r} (expected :4096:8 or :16:8)")
    return out


def recipe_of(settings: dict[str, Any]) -> dict[str, Any] | None:
    value = settings.get(SETTINGS_KEY) if isinstance(settings, dict) else None
    return value if isinstance(value, dict) else None


def summary(settings: dict[str, Any]) -> str:
    """One line: the seed and what was seeded, then complete or what is missing."""
    recipe = recipe_of(settings)
    if recipe is None:
        return "not recorded (a run captured before driftboard recorded its seeding recipe)"
    seeded = recipe.get("seeded") if isinstance(recipe.get("seeded"), dict) else {}
    names = [rng for rng in RNGS if seeded.get(rng) is True]
    seed = recipe.get("seed")
    head = f"seed {seed}: {', '.join(names)} seeded" if names else "no random stream seeded"
    lacking = missing(recipe)
    return f"{head}; complete" if not lacking else f"{head}; incomplete: {', '.join(lacking)}"
