"""Write the demo inputs: scikit-image's bundled photos as files, and the input Parquet.

Usage: python scripts/make_demo_inputs.py OUT_DIR
Writes OUT_DIR/images/<name>.{jpg,png} and OUT_DIR/images.parquet with columns
path, image_id and label (the expected ImageNet class where it is obvious).
"""

from __future__ import annotations

import sys
from pathlib import Path

# name -> (file format, expected ImageNet label or None)
PHOTOS = {
    "chelsea": ("jpg", "tabby"),
    "coffee": ("jpg", "espresso"),
    "astronaut": ("jpg", None),
    "rocket": ("jpg", None),
    "horse": ("png", None),
    "camera": ("png", None),
    "hubble_deep_field": ("jpg", None),
    "immunohistochemistry": ("png", None),
}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import skimage.data
    from PIL import Image

    out = Path(argv[0]).resolve()
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (fmt, label) in PHOTOS.items():
        image = getattr(skimage.data, name)()
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        path = out / "images" / f"{name}.{fmt}"
        Image.fromarray(image).save(path, quality=92) if fmt == "jpg" else \
            Image.fromarray(image).save(path)
        rows.append({"path": str(path), "image_id": name, "label": label})
    pq.write_table(pa.Table.from_pylist(rows), out / "images.parquet")
    print(out / "images.parquet")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
