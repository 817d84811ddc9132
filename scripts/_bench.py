"""What the benchmark scripts share: a private Keras cache seeded from ``../shared/models``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def keras_home(models_dir: Path, home: Path | None = None) -> Path:
    """Point ``KERAS_HOME`` at a fresh folder whose ``models/`` links the files of ``models_dir``.

    Keras then finds the ImageNet weights and class index offline, as in a
    user's cache.
    """
    home = Path(tempfile.mkdtemp(prefix="bench-keras-home-")) if home is None else home
    (home / "models").mkdir(parents=True, exist_ok=True)
    for f in Path(models_dir).iterdir():
        (home / "models" / f.name).symlink_to(f.resolve())
    os.environ["KERAS_HOME"] = str(home)
    return home
