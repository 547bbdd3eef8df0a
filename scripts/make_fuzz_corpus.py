#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (tiny valid files of each format)
into fuzz/corpus/<target>/, with the Python standard library only."""
import gzip
import json
import os
import shutil
import struct
import zlib

ROOT = os.path.join(os.path.dirname(__file__), "..")
OUT = os.path.join(ROOT, "fuzz", "corpus")
EXT = ["png", "jpg", "tif", "gif", "bmp", "ppm", "pgm", "pbm", "ppm.gz", "png.gz"]


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def png(w, h, grey=True):
    rows = b"".join(b"\x00" + bytes((x * 40 + y * 7) % 256 for x in range(w * (1 if grey else 3))) for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0 if grey else 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def bmp(w, h):
    row = (w * 3 + 3) // 4 * 4
    pixels = b"".join(bytes((x * 50) % 256 for x in range(w * 3)) + b"\x00" * (row - w * 3) for _ in range(h))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def tiff(w, h, values, bits=16, signed=True):
    fmt = {16: "h" if signed else "H", 8: "B"}[bits]
    data = struct.pack("<" + fmt * len(values), *values)
    entries = [
        (256, 3, 1, w), (257, 3, 1, h), (258, 3, 1, bits), (259, 3, 1, 1), (262, 3, 1, 1),
        (273, 4, 1, 8), (277, 3, 1, 1), (278, 3, 1, h), (279, 4, 1, len(data)),
        (339, 3, 1, 2 if signed else 1),
    ]
    ifd_offset = 8 + len(data)
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        packed = struct.pack("<H", value) + b"\x00\x00" if typ == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, typ, count) + packed
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", ifd_offset) + data + ifd


def nifti(dims, values):
    header = bytearray(348)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 3, *dims, 1, 1, 1, 1)
    struct.pack_into("<hh", header, 70, 4, 16)  # datatype int16, bitpix
    struct.pack_into("<8f", header, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<f", header, 108, 352.0)  # vox_offset
    struct.pack_into("<f", header, 112, 1.0)  # scl_slope
    header[344:348] = b"n+1\x00"
    return bytes(header) + b"\x00" * 4 + struct.pack("<" + "h" * len(values), *values)


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    grey = png(5, 4)
    put("image_reader", "png", bytes([EXT.index("png")]) + grey)
    put("image_reader", "png_rgb", bytes([EXT.index("png")]) + png(3, 3, grey=False))
    put("image_reader", "png_gz", bytes([EXT.index("png.gz")]) + gzip.compress(grey))
    put("image_reader", "bmp", bytes([EXT.index("bmp")]) + bmp(3, 2))
    put("image_reader", "ppm", bytes([EXT.index("ppm")]) + b"P6\n2 2\n255\n" + bytes(range(12)))
    put("image_reader", "pgm", bytes([EXT.index("pgm")]) + b"P5\n3 1\n255\n\x00\x80\xff")
    put("image_reader", "ppm_gz", bytes([EXT.index("ppm.gz")]) + gzip.compress(b"P6\n1 1\n255\n\x01\x02\x03"))
    put("image_reader", "tif8", bytes([EXT.index("tif")]) + tiff(2, 2, [0, 255, 255, 0], bits=8, signed=False))
    put("ct_reader", "int16", tiff(3, 2, [-1000, -500, 0, 100, 400, 1200]))
    put("ct_reader", "uint8", tiff(2, 1, [0, 255], bits=8, signed=False))
    vol = nifti((2, 2, 2), [0, 1, 0, 1, 1, 0, 1, 0])
    put("nifti_reader", "nii", b"\x00" + vol)
    put("nifti_reader", "nii_gz", b"\x01" + gzip.compress(vol))
    fixtures = os.path.join(ROOT, "crates", "r2unet", "tests", "fixtures")
    for name in ["parity/r2unet/weights.safetensors", "leejunhyun/R2U_Net/weights.safetensors"]:
        path = os.path.join(fixtures, name)
        if os.path.exists(path):
            put("weights", name.replace("/", "_"), open(path, "rb").read())
    config = json.load(open(os.path.join(ROOT, "weights", "drive-r2unet.json")))
    put("config_json", "model", json.dumps(config).encode())
    run = os.path.join(ROOT, "results", "drive-bn-comparison", "per-step")
    for name in ["config.json", "state.json"]:
        put("config_json", name, open(os.path.join(run, name), "rb").read())


if __name__ == "__main__":
    main()
