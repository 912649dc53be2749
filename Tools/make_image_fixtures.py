#!/usr/bin/env python3
"""Image decoding and resizing references for the image tests, from Pillow.

Writes into Tests/Fixtures/images/ one small crop of scikit-image's `chelsea` (40x56) as
  rgb8.png, rgba8.png, gray8.png, palette.png, rgb16.png, photo.jpg (quality 90)
and what Pillow decodes from each, as uint8 RGB [H, W, 3] (`<file>.expected.npy`; 16-bit values
scaled to 8 bits), plus `resized_23x31.npy`: Pillow's antialiased bilinear resize of rgb8 to 31x23.
Run:  python3 Tools/make_image_fixtures.py
"""
import os

import numpy as np
from PIL import Image
from skimage import data

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "images")


def main():
    os.makedirs(OUT, exist_ok=True)
    rgb = data.chelsea()[100:140, 150:206].copy()
    Image.fromarray(rgb).save(os.path.join(OUT, "rgb8.png"))
    alpha = np.linspace(0, 255, rgb.shape[0] * rgb.shape[1]).reshape(rgb.shape[:2]).astype(np.uint8)
    Image.fromarray(np.dstack([rgb, alpha])).save(os.path.join(OUT, "rgba8.png"))
    Image.fromarray(rgb).convert("L").save(os.path.join(OUT, "gray8.png"))
    Image.fromarray(rgb).quantize(colors=16).save(os.path.join(OUT, "palette.png"))
    # 16-bit RGB (Pillow cannot write it; write it by hand with zlib).
    import struct
    import zlib
    wide = rgb.astype(np.uint16) * 257
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in wide)

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", wide.shape[1], wide.shape[0], 16, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(os.path.join(OUT, "rgb16.png"), "wb").write(png)
    Image.fromarray(rgb).save(os.path.join(OUT, "photo.jpg"), quality=90)
    for name in ["rgb8.png", "rgba8.png", "gray8.png", "palette.png", "photo.jpg"]:
        decoded = np.asarray(Image.open(os.path.join(OUT, name)).convert("RGB"))
        np.save(os.path.join(OUT, name + ".expected.npy"), decoded)
    np.save(os.path.join(OUT, "rgb16.png.expected.npy"), rgb)
    resized = np.asarray(Image.fromarray(rgb).resize((31, 23), Image.BILINEAR))
    np.save(os.path.join(OUT, "resized_23x31.npy"), resized)
    print("done")


if __name__ == "__main__":
    main()
