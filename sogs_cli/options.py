"""The options that build `CompressSettings` and `StreamedSettings`, declared once for both the
`sogs-cluster compress` command and the backfill (`python -m ray_jobs.backfill`)."""
from __future__ import annotations

import argparse
from dataclasses import replace

from sogs_core.settings import (DEFAULT_QUALITY, ORDER_METHODS, PLAS_SCHEDULES, ChunkOptions, CompressSettings,
                                StreamedSettings, WebpSettings, plas_schedule)

#: what compress, decompress, info, compare and the backfill read (sogs_core.formats says how
#: each is recognised)
INPUT_FORMATS = ("PLY (INRIA 3DGS), compressed PLY (PlayCanvas/SuperSplat), .spz (v2-v4), .splat, .ksplat, "
                 "SOG v2 or v1 (.sog bundle, SOG folder or its meta.json)")

ORDER_HELP = ("splat order, which decides the size: chain (default: a Hilbert curve re-chained so that "
              "neighbouring texels store similar bytes, or a Morton order (y first) where a sample of the rows encodes smaller), "
              "hilbert, morton (what splat-transform writes), plas (PLAS grid sort; slower, larger on real "
              "scenes), input (keep the input order)")

#: what --plas auto means, said differently where the device is known (compress) and where it is
#: decided before any actor starts (the backfill)
PLAS_AUTO_COMPRESS = "auto (default: full on CUDA, fast on CPU)"
PLAS_AUTO_BACKFILL = ("auto (default: fast with --device cpu or when a local Ray starts on a machine without a CUDA "
                      "GPU, else full)")

WEBP_ENCODER_HELP = ("who writes the WebP images: libwebp (one CPU thread per image), "
                     "own (our encoder, on the device; 2-10x faster per image on a GPU, the SH labels 8-9 %% "
                     "smaller at 1M-8M, means_u up to 7 %% larger), auto (default, on CUDA: own "
                     "for the SH labels of any scene, sh0 from 500k splats, the palette from 750k texels, "
                     "means_u and means_l from 2M splats, every image from 6M; else libwebp)")


def quality_level(text: str) -> int:
    """--quality's value: an integer 0..100, else argparse's one-line usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer 0..100, not {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be 0..100, not {value}")
    return value


def add_compress_options(group, plas_auto: str = PLAS_AUTO_COMPRESS, hashed: bool = False) -> None:
    """The options of `CompressSettings` (--sh-bands, --seed, --iterations, --order, --plas,
    --webp-encoder, --quality, --requantize); `hashed` adds that each is part of the backfill's settings hash."""
    tail = " (part of the settings hash)" if hashed else ""
    group.add_argument("--sh-bands", type=int, choices=[0, 1, 2, 3], default=None,
                       help="keep SH bands up to this degree (default: all the input has)" + tail)
    group.add_argument("--seed", type=int, default=0,
                       help="seed of the sort and k-means (default 0); same seed, same output" + tail)
    group.add_argument("--iterations", type=int, default=10,
                       help="k-means iterations for the SH palette (default 10)" + tail)
    group.add_argument("--order", default="chain", choices=list(ORDER_METHODS), help=ORDER_HELP + tail)
    group.add_argument("--plas", default="auto", choices=list(PLAS_SCHEDULES),
                       help="schedule of --order plas: full (the best neighbour distance; for GPUs), fast (fewer, "
                            "looser levels: several times fewer steps for a slightly worse order; for CPUs), "
                            + plas_auto + tail)
    group.add_argument("--webp-encoder", default="auto", choices=["auto", "libwebp", "own"],
                       help=WEBP_ENCODER_HELP + tail)
    group.add_argument("--quality", type=quality_level, default=DEFAULT_QUALITY, metavar="0..100",
                       help="what to trade for bytes, cwebp's convention (default %(default)s): 100 stores "
                            "every attribute at its nearest code (positions within half a 16-bit step) with "
                            "splat-transform's SH palette size; 90-99 drop the lowest position bit (within 1 "
                            "step) and keep 90 %% of the palette entries, 80-89 two bits and 75 %%, 70-79 three "
                            "and 50 %%, below 70 four and 37.5 %%; README 'Quality levels' has the bytes and "
                            "render PSNR of each level" + tail)
    group.add_argument("--requantize", action="store_true",
                       help="SOG v2 input: quantize and cluster it again instead of keeping its codes (default: keep "
                            "them, re-order and re-encode only, so they lose nothing a second time)" + tail)


def compress_settings(args: argparse.Namespace, on_gpu: bool) -> CompressSettings:
    """`CompressSettings` from the options of `add_compress_options`; `on_gpu` decides --plas auto."""
    return CompressSettings(sh_bands=args.sh_bands, seed=args.seed, kmeans_iterations=args.iterations,
                            order=args.order, plas=plas_schedule(args.plas, on_gpu), requantize=args.requantize,
                            webp=replace(WebpSettings(), encoder=args.webp_encoder), quality=args.quality)


def add_streamed_options(group) -> None:
    """The options that shape a streamed SOG (`StreamedSettings`) and how its input is read."""
    group.add_argument("--lod-levels", type=int, default=4,
                       help="levels of detail made from one input, level 0 the input itself (default 4: 1, 1/2, 1/4, 1/8)")
    group.add_argument("--chunk-count", type=float, default=512,
                       help="splats (in thousands) past which a chunk is split and a level-0 file is closed (default 512)")
    group.add_argument("--chunk-extent", type=float, default=16.0,
                       help="a chunk wider than this (world units) is split ... (default 16)")
    group.add_argument("--chunk-min", type=float, default=8,
                       help="... while it holds more than this many thousand splats (default 8)")
    group.add_argument("--memory-budget", type=float, default=2048,
                       help="MB: a PLY input larger than this is mapped and read by ranges, one or two chunk groups at "
                            "a time (default 2048)")


def streamed_settings(args: argparse.Namespace) -> StreamedSettings:
    """`StreamedSettings` from the options of `add_streamed_options` (raises ValueError)."""
    return StreamedSettings(levels=args.lod_levels,
                            chunks=ChunkOptions(chunk_count=int(args.chunk_count * 1024), chunk_extent=args.chunk_extent,
                                                chunk_min=int(args.chunk_min * 1024)))


def memory_budget(args: argparse.Namespace) -> int:
    """--memory-budget in bytes."""
    return int(args.memory_budget * 2**20)
