#!/usr/bin/python3
"""make_corpus.py — writes the seed corpus of the fuzz targets (fuzz/corpus/).

Run once with Debian's Python and GDAL bindings (python3-gdal):

    /usr/bin/python3 fuzz/make_corpus.py

The seeds are committed; rerunning rewrites the generated ones (files named
regress-* and gdal-* are fuzzer findings kept as regression inputs, see
fuzz/README.md; they are left alone).
Everything is tiny: the whole corpus stays well under 200 KB.

fuzz_scene seeds are raster files (or archives, in fuzz_scene.c's layout, of
several files: stacks, sidecars, a "bands" selector file) followed by 8
parameter bytes that fuzz_scene.c reads from the end of its input (tiling,
resampling, an extra window); every format ignores trailing bytes.
"""
import json
import os
import struct
import zlib

from osgeo import gdal, osr

gdal.UseExceptions()
HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def vsimem_bytes(path):
    f = gdal.VSIFOpenL(path, "rb")
    gdal.VSIFSeekL(f, 0, 2)
    n = gdal.VSIFTellL(f)
    gdal.VSIFSeekL(f, 0, 0)
    data = gdal.VSIFReadL(1, n, f)
    gdal.VSIFCloseL(f)
    return bytes(data)


def utm43():
    s = osr.SpatialReference()
    s.ImportFromEPSG(32643)
    return s.ExportToWkt()


def pattern(w, h, b, mod):
    """Deterministic pixel values: a gradient with a few holes."""
    return [[((x * 7 + y * 13 + b * 29) % mod) for x in range(w)] for y in range(h)]


def make(driver, w, h, nbands, dtype, options=(), gt=(500000, 30, 0, 4000000, 0, -30),
         srs=True, values=None, setup=None, name="/vsimem/seed.tif", via_gtiff=False):
    """A raster in /vsimem/ through `driver` (CreateCopy from MEM), its bytes."""
    mem = gdal.GetDriverByName("MEM").Create("", w, h, nbands, dtype)
    if gt:
        mem.SetGeoTransform(gt)
    if srs:
        mem.SetProjection(utm43())
    for b in range(1, nbands + 1 if values is not False else 1):
        band = mem.GetRasterBand(b)
        rows = values(b) if values else pattern(w, h, b, 250)
        for y, row in enumerate(rows):
            fmt = {gdal.GDT_Byte: "B", gdal.GDT_UInt16: "H", gdal.GDT_Int16: "h",
                   gdal.GDT_UInt32: "I", gdal.GDT_Int32: "i", gdal.GDT_Float32: "f",
                   gdal.GDT_Float64: "d"}[dtype]
            band.WriteRaster(0, y, w, 1, struct.pack("<%d%s" % (w, fmt), *row),
                             buf_type=dtype)
    if setup:
        setup(mem)
    gdal.GetDriverByName(driver).CreateCopy(name, mem, options=list(options))
    mem = None
    data = vsimem_bytes(name)
    gdal.Unlink(name)
    for side in (name + ".aux.xml",):
        if gdal.VSIStatL(side):
            gdal.Unlink(side)
    return data


def archive(files, tail):
    """The archive layout fuzz_scene.c unpacks (modelled on GDAL's fuzzer-friendly
    archives)."""
    parts = [b"FUZZER_FRIENDLY_ARCHIVE\n"]
    for name, data in files:
        parts.append(b"***NEWFILE***:" + name.encode() + b"\n" + data)
    return b"".join(parts) + tail


def tail(tile_small, tile, overlap, resampling, wx, wy, pad):
    """The 8 parameter bytes fuzz_scene.c reads from the end of its input."""
    t0 = (0x80 if tile_small else 0) | ((tile >> 8) & 0x7F)
    return bytes([t0, tile & 0xFF, overlap >> 8, overlap & 0xFF, resampling, wx, wy, pad])


def scene_seeds():
    # 1. Byte, one band, nodata 0, north-up UTM.
    def nodata0(ds):
        ds.GetRasterBand(1).SetNoDataValue(0)
    out("fuzz_scene", "gtiff-byte-nodata", make("GTiff", 16, 12, 1, gdal.GDT_Byte, setup=nodata0)
        + tail(True, 0, 3, 0, 10, 200, 0x1B))
    # 2. UInt16, 3 named bands, tiled + DEFLATE, scale/offset on one band.
    def named(ds):
        for i, n in enumerate(["green", "swir1", "red"]):
            ds.GetRasterBand(i + 1).SetDescription(n)
            ds.GetRasterBand(i + 1).SetNoDataValue(0)
        ds.GetRasterBand(2).SetScale(0.0001)
        ds.GetRasterBand(2).SetOffset(-0.1)
    out("fuzz_scene", "gtiff-uint16-tiled-named",
        make("GTiff", 40, 33, 3, gdal.GDT_UInt16,
             ["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16", "COMPRESS=DEFLATE"], setup=named)
        + tail(True, 8, 4, 1, 128, 128, 0x3F))
    # 3. Float32 with NaN nodata, a rotated geotransform, pixel interleave.
    def nan_values(b):
        return [[float("nan") if (x + y) % 5 == 0 else x * 0.5 - y for x in range(20)]
                for y in range(20)]
    def nan_nodata(ds):
        ds.GetRasterBand(1).SetNoDataValue(float("nan"))
    out("fuzz_scene", "gtiff-float32-nan-rotated",
        make("GTiff", 20, 20, 2, gdal.GDT_Float32, ["INTERLEAVE=PIXEL"],
             gt=(1000, 10, 2, 5000, 1.5, -10), values=nan_values, setup=nan_nodata)
        + tail(False, 5, 1, 0, 255, 0, 0x09))
    # 4. Float64 + internal per-dataset mask (GDAL_TIFF_INTERNAL_MASK).
    def mask(ds):
        ds.CreateMaskBand(gdal.GMF_PER_DATASET)
        m = ds.GetRasterBand(1).GetMaskBand()
        m.WriteRaster(0, 0, 12, 12, bytes(255 if (x // 3 + y // 3) % 2 else 0
                                          for y in range(12) for x in range(12)))
    gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", "YES")
    out("fuzz_scene", "gtiff-float64-mask",
        make("GTiff", 12, 12, 1, gdal.GDT_Float64, ["COMPRESS=LZW"], setup=mask)
        + tail(True, 0, 7, 5, 3, 3, 0x00))
    gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", None)
    # 5. RGBA with an alpha band, no georeferencing.
    def alpha(ds):
        ds.GetRasterBand(4).SetColorInterpretation(gdal.GCI_AlphaBand)
    out("fuzz_scene", "gtiff-rgba-alpha",
        make("GTiff", 10, 9, 4, gdal.GDT_Byte, ["PHOTOMETRIC=RGB", "ALPHA=YES"], gt=None,
             srs=False, setup=alpha) + tail(True, 2, 0, 6, 0, 255, 0x12))
    # 6. GCP-only georeferencing and RPC metadata, Int16.
    def gcps(ds):
        s = osr.SpatialReference()
        s.ImportFromEPSG(4326)
        ds.SetGCPs([gdal.GCP(77.0, 34.0, 0, 0, 0), gdal.GCP(77.1, 34.0, 0, 14, 0),
                    gdal.GCP(77.0, 33.9, 0, 0, 11)], s.ExportToWkt())
        ds.SetMetadata({"LINE_OFF": "5", "SAMP_OFF": "7", "LAT_OFF": "34", "LONG_OFF": "77",
                        "HEIGHT_OFF": "4000", "LINE_SCALE": "6", "SAMP_SCALE": "7",
                        "LAT_SCALE": "0.1", "LONG_SCALE": "0.1", "HEIGHT_SCALE": "500",
                        "LINE_NUM_COEFF": " ".join(["1"] + ["0"] * 19),
                        "LINE_DEN_COEFF": " ".join(["1"] + ["0"] * 19),
                        "SAMP_NUM_COEFF": " ".join(["0", "1"] + ["0"] * 18),
                        "SAMP_DEN_COEFF": " ".join(["1"] + ["0"] * 19)}, "RPC")
    out("fuzz_scene", "gtiff-int16-gcps-rpc",
        make("GTiff", 14, 11, 1, gdal.GDT_Int16, gt=None, srs=False, setup=gcps)
        + tail(True, 1, 2, 2, 77, 33, 0x3F))
    # 7. UInt32, 8 bands, band-interleaved strips of 3 rows.
    out("fuzz_scene", "gtiff-uint32-8band-strips",
        make("GTiff", 9, 7, 8, gdal.GDT_UInt32, ["INTERLEAVE=BAND", "BLOCKYSIZE=3"])
        + tail(True, 0, 1, 3, 200, 100, 0x24))
    # 8. A JPEG-compressed tiled GeoTIFF (YCbCr).
    out("fuzz_scene", "gtiff-jpeg-ycbcr",
        make("GTiff", 32, 24, 3, gdal.GDT_Byte,
             ["COMPRESS=JPEG", "PHOTOMETRIC=YCBCR", "TILED=YES", "BLOCKXSIZE=16",
              "BLOCKYSIZE=16", "JPEG_QUALITY=50"])
        + tail(True, 8, 8, 4, 20, 20, 0x00))
    # 9. PNG (grey + alpha) and JPEG: no georeferencing of their own.
    out("fuzz_scene", "png-grey-alpha",
        make("PNG", 11, 7, 2, gdal.GDT_Byte, gt=None, srs=False, name="/vsimem/seed.png")
        + tail(True, 0, 0, 0, 128, 64, 0x01))
    out("fuzz_scene", "jpeg-rgb",
        make("JPEG", 16, 16, 3, gdal.GDT_Byte, ["QUALITY=40"], gt=None, srs=False,
             name="/vsimem/seed.jpg") + tail(True, 8, 3, 1, 15, 15, 0x2D))
    # 10. Erdas Imagine (HFA) and JPEG 2000 (Sentinel-2 style UInt16).
    out("fuzz_scene", "hfa-uint16",
        make("HFA", 13, 10, 2, gdal.GDT_UInt16, name="/vsimem/seed.img")
        + tail(True, 0, 5, 0, 0, 0, 0x3F))
    try:
        out("fuzz_scene", "jp2-uint16",
            make("JP2OpenJPEG", 16, 12, 1, gdal.GDT_UInt16,
                 ["QUALITY=100", "REVERSIBLE=YES", "RESOLUTIONS=2"],
                 name="/vsimem/seed.jp2")
            + tail(True, 0, 4, 5, 100, 100, 0x00))
    except RuntimeError as e:
        print("no JP2 seed:", e)
    # 11. ENVI raw + .hdr sidecar in an archive.
    envi = "/vsimem/envi.bin"
    def named2(ds):
        ds.GetRasterBand(1).SetDescription("B3")
        ds.GetRasterBand(2).SetDescription("B6")
    make("ENVI", 8, 6, 2, gdal.GDT_Int16, ["INTERLEAVE=BIL"], setup=named2, name=envi)
    # make() unlinked the data file only; rebuild to keep both files
    mem = gdal.GetDriverByName("MEM").Create("", 8, 6, 2, gdal.GDT_Int16)
    mem.SetGeoTransform((300000, 20, 0, 4100000, 0, -20))
    mem.SetProjection(utm43())
    named2(mem)
    for b in (1, 2):
        mem.GetRasterBand(b).Fill(100 * b)
    gdal.GetDriverByName("ENVI").CreateCopy(envi, mem, options=["INTERLEAVE=BIL"])
    mem = None
    files = [("scene.bin", vsimem_bytes(envi)), ("scene.hdr", vsimem_bytes("/vsimem/envi.hdr"))]
    for f in gdal.ReadDir("/vsimem/") or []:
        if f.startswith("envi"):
            gdal.Unlink("/vsimem/" + f)
    out("fuzz_scene", "envi-bil-archive", archive(files, tail(True, 0, 2, 0, 50, 50, 0x09)))

    # 12. Stacks: a 30 m file and a 60 m file on the same CRS, offset by
    # half their overlap (resampled reads, cropped common extent), plus a
    # .aux.xml sidecar setting scale/offset/nodata on the coarse file, and a
    # "bands" file selecting by name and number.
    def g(ds):
        ds.GetRasterBand(1).SetDescription("green")
    fine = make("GTiff", 20, 20, 1, gdal.GDT_UInt16, gt=(500000, 30, 0, 4000000, 0, -30),
                setup=g)
    def s(ds):
        ds.GetRasterBand(1).SetDescription("swir1")
    coarse = make("GTiff", 10, 10, 1, gdal.GDT_UInt16, gt=(500090, 60, 0, 3999880, 0, -60),
                  setup=s)
    aux = (b'<PAMDataset><PAMRasterBand band="1"><NoDataValue>7</NoDataValue>'
           b'<Offset>-0.5</Offset><Scale>0.01</Scale></PAMRasterBand></PAMDataset>\n')
    out("fuzz_scene", "stack-30m-60m",
        archive([("B3.tif", fine), ("B6.tif", coarse)], tail(True, 0, 2, 1, 128, 0, 0x3F)))
    out("fuzz_scene", "stack-aux-bands",
        archive([("bands", b"swir1,green,2"), ("B3.tif", fine), ("B6.tif", coarse),
                 ("B6.tif.aux.xml", aux)], tail(True, 4, 1, 2, 255, 255, 0x00)))
    # three files, one of them 3 bands at 90 m, bilinear/average
    third = make("GTiff", 7, 7, 3, gdal.GDT_Byte, gt=(500000, 90, 0, 4000000, 0, -90))
    out("fuzz_scene", "stack-three-average",
        archive([("a.tif", fine), ("b.tif", coarse), ("c.tif", third)],
                tail(True, 1, 5, 5, 64, 200, 0x1B)))
    # an external overview and a .msk beside a GeoTIFF
    base = make("GTiff", 16, 16, 1, gdal.GDT_Byte)
    msk = make("GTiff", 16, 16, 1, gdal.GDT_Byte, gt=None, srs=False,
               values=lambda b: [[255 if x > y else 0 for x in range(16)] for y in range(16)])
    out("fuzz_scene", "gtiff-external-msk",
        archive([("s.tif", base), ("s.tif.msk", msk)], tail(True, 0, 1, 0, 8, 8, 0x09)))
    # absurd declared sizes in tiny files: a PNG header of 1,000,000 x
    # 1,000,000 pixels (libpng's limit) with no data, a GeoTIFF whose tags
    # declare 2^20 x 2^20 pixels of a single uncompressed strip
    ihdr = struct.pack(">IIBBBBB", 1000000, 1000000, 8, 0, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
           + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
           + struct.pack(">I", 0) + b"IDAT" + struct.pack(">I", zlib.crc32(b"IDAT")))
    out("fuzz_scene", "png-huge-declared", png + tail(False, 256, 32, 0, 1, 1, 0x00))
    tif = bytearray(make("GTiff", 8, 8, 1, gdal.GDT_Byte))
    # patch ImageWidth / ImageLength / RowsPerStrip (SHORT or LONG) in IFD 0
    ifd = struct.unpack_from("<I", tif, 4)[0]
    for i in range(struct.unpack_from("<H", tif, ifd)[0]):
        e = ifd + 2 + 12 * i
        tag, typ = struct.unpack_from("<HH", tif, e)
        if tag in (256, 257, 278):
            struct.pack_into("<HI", tif, e + 2, 4, 1)
            struct.pack_into("<I", tif, e + 8, 1 << 20)
    out("fuzz_scene", "gtiff-huge-declared", bytes(tif) + tail(False, 512, 64, 0, 9, 9, 0x00))
    # a complex band (refused by gseg)
    out("fuzz_scene", "gtiff-complex",
        make("GTiff", 4, 4, 1, gdal.GDT_CInt16, values=False)
        + tail(True, 0, 0, 0, 0, 0, 0x00))


def st_file(tensors, metadata=None, pad=True, header_override=None, data_extra=b""):
    """A safetensors file: tensors = [(name, dtype, shape, raw bytes)]."""
    hdr = {}
    if metadata is not None:
        hdr["__metadata__"] = metadata
    off = 0
    blob = b""
    for name, dtype, shape, raw in tensors:
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    text = header_override if header_override is not None else json.dumps(
        hdr, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob + data_extra


def gseg_meta():
    return json.dumps({
        "gseg_format": 1,
        "architecture": {"name": "unet", "encoder": "resnet18", "in_channels": 2,
                         "outputs": 1},
        "bands": [{"name": "green", "mean": 1200.5, "std": 350.25},
                  {"name": "swir1", "mean": 800, "std": 210.0}],
        "classes": [{"name": "background", "color": "#00000000"},
                    {"name": "glacier", "color": "#00aaff"}],
        "threshold": 0.5, "tile": 256, "overlap": 32,
        "provenance": {"data": "synthetic", "epochs": 3, "metrics": {"miou": 0.91},
                       "note": "caf\u00e9 \\ \"quoted\" \u0001 \ud83c\udfd4"},
    })


def safetensors_seeds():
    f32 = struct.pack("<6f", 0.5, -1.25, 3.0, float("inf"), -0.0, 1e-30)
    # a small gseg model file: metadata + a few tensors of several dtypes
    out("fuzz_safetensors", "gseg-model",
        st_file([("encoder.conv1.weight", "F32", [1, 2, 1, 3], f32),
                 ("encoder.bn1.running_mean", "BF16", [2], struct.pack("<2H", 0x3F80, 0xC000)),
                 ("encoder.bn1.num_batches_tracked", "I64", [], struct.pack("<q", 12345)),
                 ("segmentation_head.0.bias", "F16", [1], struct.pack("<H", 0x3C00))],
                {"gseg": gseg_meta(), "format": "pt"}))
    # every dtype, an empty tensor, a scalar
    raws = [("b", "BOOL", [3], b"\x00\x01\x02"), ("u8", "U8", [2], b"\xff\x01"),
            ("i8", "I8", [2], b"\x80\x7f"), ("i16", "I16", [1], struct.pack("<h", -2)),
            ("u16", "U16", [1], struct.pack("<H", 65535)),
            ("i32", "I32", [1], struct.pack("<i", -7)), ("u32", "U32", [1], struct.pack("<I", 7)),
            ("u64", "U64", [2], struct.pack("<2Q", 2 ** 63, 5)),
            ("f64", "F64", [2], struct.pack("<2d", 1e300, 2.5)),
            ("empty", "F32", [0, 4], b""), ("scalar", "F32", [], struct.pack("<f", 2.0))]
    out("fuzz_safetensors", "all-dtypes", st_file(raws, {"format": "pt"}))
    # broken files
    good = st_file([("w", "F32", [2], struct.pack("<2f", 1, 2))])
    out("fuzz_safetensors", "truncated-data", good[:-3])
    out("fuzz_safetensors", "header-too-long", struct.pack("<Q", 1 << 40) + b"{}")
    out("fuzz_safetensors", "overlap",
        st_file([], header_override=b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                                    b'"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
                data_extra=b"\0" * 8))
    out("fuzz_safetensors", "bad-entries",
        st_file([], header_override=b'{"x":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]},'
                                    b'"y":{"dtype":"Q","shape":[-1],"data_offsets":[1,0]}}',
                data_extra=b"\0"))
    out("fuzz_safetensors", "json-edge",
        st_file([], header_override=b'{"__metadata__":{"gseg":"{\\"a\\":[1,-0,1e308,'
                                    b'-9223372036854775808,9223372036854775808,0.1e-5,'
                                    b'\\"\\\\ud83d\\\\ude00\\",[[[[]]]],{},true,false,null]}",'
                                    b'"k\\u0000":"v"}}'))
    out("fuzz_safetensors", "duplicate-key",
        st_file([], header_override=b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                                    b'"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}',
                data_extra=b"\x01"))
    out("fuzz_safetensors", "deep-nesting",
        st_file([], header_override=b'{"__metadata__":' + b"[" * 70 + b"]" * 70 + b"}"))


def cli_seeds():
    seeds = {
        "ndsi-template": ["--model", "ndsi:green=3,swir=6", "scene.tif", "-o",
                          "out/{stem}_mask.tif", "--vector", "{dir}/{stem}.gpkg"],
        "tiling": ["--image_path", "a.tif", "b.tif", "--tile", "256", "--overlap", "32",
                   "--batch", "4", "--readers", "2", "--precision", "bf16", "--threshold",
                   "0.5", "--threads", "0"],
        "band-files": ["--band-file", "B3.tif", "--band-file", "B6.tif", "--min-area", "0.01",
                       "--simplify", "15", "-of", "GTiff", "-co", "COMPRESS=DEFLATE", "-f",
                       "GPKG"],
        "batch": ["--scene-list", "list.txt", "--shard", "3/8", "--skip-existing",
                  "--summary", "-", "-q"],
        "help": ["--help"],
        "version": ["x.tif", "--version"],
        "templates": ["ndsi:green=green,swir=swir1,threshold=0.35",
                      "{{literal}}/{name}.{ext}-{index}", "/data/scene_001.tif", "out/",
                      "{stem", "{unknown}.tif", "/vsimem/x/"],
        "slurm": ["7", "16", "0", "1"],
        "quicklook": ["--quicklook", "ql.png", "--quicklook-bands", "red,green,blue",
                      "--quicklook-size", "512", "--tta", "--device", "cuda:1", "--t_srs",
                      "EPSG:4326", "-r", "cubic", "scene.tif"],
        "errors": ["--tile", "8", "--overlap", "8", "--batch", "0", "--shard", "8/8",
                   "--precision", "fp8", "-co", "NOEQUALS", "--bogus"],
        "numbers": ["-9223372036854775808", "2147483648", "1e309", "0x10", " 5", "-0",
                    "nan", "inf", "5/", "/5", "+1/2"],
    }
    for name, args in seeds.items():
        out("fuzz_cli", name, "\n".join(args).encode())


if __name__ == "__main__":
    scene_seeds()
    safetensors_seeds()
    cli_seeds()
    total = 0
    for root, _, files in os.walk(CORPUS):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    print("corpus: %d bytes" % total)
