"""Remake ``img/`` from the photographs scikit-image ships (``skimage/data``): each one at most
256 px on its longer side, as a JPEG. Run it from anywhere: ``python examples/photos/make_images.py``.

The sources and their licences are listed in ``LICENSE.md`` beside this script.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

#: the example's image file -> the scikit-image data file it is made from
SOURCES = {
    "photographer.jpg": "camera.png",
    "astronaut.jpg": "astronaut.png",
    "deep-field.jpg": "hubble_deep_field.jpg",
    "rocket.jpg": "rocket.jpg",
    "retina.jpg": "retina.jpg",
    "chelsea.jpg": "chelsea.png",
    "coffee.jpg": "coffee.png",
    "coins.jpg": "coins.png",
    "clock.jpg": "clock_motion.png",
}
MAX_SIDE = 256
QUALITY = 85


def make(source_dir: Path, out_dir: Path) -> list[Path]:
    """Write every image of :data:`SOURCES` from ``source_dir`` into ``out_dir``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, source in SOURCES.items():
        with Image.open(source_dir / source) as image:
            small = image.convert("RGB")
            small.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
            path = out_dir / name
            small.save(path, "JPEG", quality=QUALITY, optimize=True)
            written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="the skimage/data folder (default: the installed one)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "img")
    args = parser.parse_args()
    if args.source is None:
        import skimage.data

        args.source = Path(skimage.data.__file__).parent
    for path in make(args.source, args.out):
        print(path, path.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
