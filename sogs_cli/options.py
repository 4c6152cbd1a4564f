"""The options that build `CompressSettings` and `StreamedSettings`, declared once for both the
`sogs-cluster compress` command and the backfill (`python -m ray_jobs.backfill`)."""
from __future__ import annotations

import argparse
from dataclasses import replace

from sogs_core.settings import (DEFAULT_QUALITY, INVALID_POLICIES, ORDER_METHODS, PLAS_SCHEDULES, ChunkOptions,
                                CompressSettings, EditSettings, StreamedSettings, WebpSettings, plas_schedule)

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
                            "splat-transform's SH palette size; below 100 each rotation is stored in the spelling nearest the "
                            "identity of the 24 that give the same Gaussian (nothing drawn changes) and the scales take the "
                            "PlayCanvas engine's own 255 levels (it draws them as it draws the input's), and 90-99 drop the lowest position bit (within 1 "
                            "step) and keep 90 %% of the palette entries, 80-89 two bits and 50 %%, 70-79 three and "
                            "50 %%, 60-69 three and 37.5 %% with rotations on a 7-bit grid (not a SOG input's), below 60 "
                            "also a fourth position bit; below 90 colours take 128 levels where those stay within one "
                            "display step (a trained scene's wider colours keep 256) and opacities from training sit on a 4-byte "
                            "grid; below 100 splats stored with opacity 0 (drawn by no viewer) are left out and "
                            "counted (dropped_invisible); README 'Quality levels' has the bytes and "
                            "render PSNR of each level" + tail)
    group.add_argument("--requantize", action="store_true",
                       help="SOG v2 input: quantize and cluster it again instead of keeping its codes (default: keep "
                            "them, re-order and re-encode only, so they lose nothing a second time)" + tail)


def compress_settings(args: argparse.Namespace, on_gpu: bool) -> CompressSettings:
    """`CompressSettings` from the options of `add_compress_options` and `add_edit_options`;
    `on_gpu` decides --plas auto. Raises ValueError for edits that contradict each other."""
    return CompressSettings(sh_bands=args.sh_bands, seed=args.seed, kmeans_iterations=args.iterations,
                            order=args.order, plas=plas_schedule(args.plas, on_gpu), requantize=args.requantize,
                            webp=replace(WebpSettings(), encoder=args.webp_encoder), quality=args.quality,
                            edit=edit_settings(args))


def _finite(text: str) -> float:
    """A finite number, else argparse's one-line usage error."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be finite, not {text!r}")
    return value


def _numbers(count: int, open_ends: bool = False):
    """An argparse type: `count` comma-separated numbers; with `open_ends` an empty part or '-'
    is -inf in the first half and +inf in the second (splat-transform's -B)."""
    def parse(text: str) -> tuple[float, ...]:
        parts = text.split(",")
        if len(parts) != count:
            raise argparse.ArgumentTypeError(f"needs {count} comma-separated numbers, not {text!r}")
        values = []
        for i, part in enumerate(parts):
            if open_ends and part.strip() in ("", "-"):
                values.append(float("-inf") if i < count // 2 else float("inf"))
            else:
                values.append(_finite(part))
        return tuple(values)
    return parse


def _budget(text: str) -> tuple[str, float]:
    """--max-splats: a count ('200000') or a percentage to keep ('50%')."""
    try:
        if text.endswith("%"):
            value = float(text[:-1])
            if not 0 < value <= 100:
                raise ValueError
            return "fraction", value / 100
        value = int(text)
        if value < 1:
            raise ValueError
        return "count", value
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a count >= 1 or a percentage in (0, 100] such as 50%, "
                                         f"not {text!r}") from None


EDIT_ORDER = ("Applied in this order whatever the order on the command line: --invalid, the transform (--rotate, "
              "then --scale, then --translate), --filter-box, --filter-sphere, --min-opacity, --max-splats. "
              "Coordinates and angles are the PlayCanvas engine's, as splat-transform takes them (a PLY's x and y "
              "negated); write a negative first value with '=' (--rotate=-90,0,0)")


def add_edit_options(group, hashed: bool = False) -> None:
    """The options of `EditSettings`: what is done to a scene before it is compressed (the
    group's description says in which order)."""
    tail = " (part of the settings hash)" if hashed else ""
    group.description = EDIT_ORDER
    group.add_argument("--invalid", default="fail", choices=list(INVALID_POLICIES),
                       help="splats with a NaN, a position/rotation/colour inf, a NaN or +inf scale, a NaN or -inf "
                            "opacity, or four zero rotation values (splat-transform's -N rule): fail (default) refuses "
                            "the scene with an error naming them; drop removes them and counts them (dropped_invalid); "
                            "a scene left with none fails" + tail)
    group.add_argument("--rotate", type=_numbers(3), default=None, metavar="X,Y,Z",
                       help="rotate the scene by Euler angles in degrees (R = Rz Ry Rx, splat-transform's -r), "
                            "positions, rotations and the SH coefficients with it" + tail)
    group.add_argument("--scale", type=_finite, default=None, metavar="F",
                       help="scale the scene uniformly by F > 0 (positions and splat sizes; splat-transform's -s)" + tail)
    group.add_argument("--translate", type=_numbers(3), default=None, metavar="X,Y,Z",
                       help="move the scene by X,Y,Z (splat-transform's -t)" + tail)
    group.add_argument("--filter-box", type=_numbers(6, open_ends=True), default=None, metavar="x,y,z,X,Y,Z",
                       help="keep the splats whose centre lies in the box (bounds included; an empty part or '-' "
                            "leaves that side open; splat-transform's -B)" + tail)
    group.add_argument("--filter-sphere", type=_numbers(4), default=None, metavar="X,Y,Z,R",
                       help="keep the splats whose centre lies strictly inside the sphere (splat-transform's -S)" + tail)
    group.add_argument("--min-opacity", type=_finite, default=None, metavar="A",
                       help="keep the splats whose opacity (after the sigmoid, 0..1) is at least A "
                            "(splat-transform's -V opacity,gte,A)" + tail)
    group.add_argument("--max-splats", type=_budget, default=None, metavar="N|P%",
                       help="reduce each scene to at most N splats, or P %% of them, by merging neighbours in pairs "
                            "(the streamed SOG's level merge: the scene keeps its coverage); fewer are left alone"
                            + tail)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def add_scene_cap_option(group) -> None:
    """--max-scene-splats: the largest scene read whole (`formats.checks.need_count`)."""
    from sogs_core.formats.checks import DEFAULT_MAX_SPLATS, MAX_SPLATS_VARIABLE

    group.add_argument("--max-scene-splats", type=_positive, default=None, metavar="N",
                       help=f"refuse a scene whose header claims more than N splats before reading it "
                            f"(default {DEFAULT_MAX_SPLATS:,}, or ${MAX_SPLATS_VARIABLE}; a bigger PLY can "
                            "still be written as a streamed SOG, which reads it by ranges)")


def apply_scene_cap(args: argparse.Namespace) -> None:
    """--max-scene-splats for this process (the readers read it from the environment)."""
    from sogs_core.formats.checks import set_max_scene_splats

    if getattr(args, "max_scene_splats", None) is not None:
        set_max_scene_splats(args.max_scene_splats)


def edit_settings(args: argparse.Namespace) -> EditSettings:
    """`EditSettings` from the options of `add_edit_options` (raises ValueError)."""
    kind, value = args.max_splats or (None, None)
    return EditSettings(invalid=args.invalid, rotate=args.rotate, scale=args.scale, translate=args.translate,
                        filter_box=args.filter_box, filter_sphere=args.filter_sphere, min_opacity=args.min_opacity,
                        max_splats=value if kind == "count" else None,
                        max_splats_fraction=value if kind == "fraction" else None)


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
