"""Ship a training run's generator as vidsynth's default weights.

    python scripts/ship_default.py RUN_DIR DATA_DIR
    python scripts/ship_default.py --evaluate-only RUN_DIR DATA_DIR

Writes vidsynth/weights/default/ (model.safetensors, config.json, quality.json),
docs/samples.png (8 videos x 16 frames, a row per video, category = row mod classes) and
docs/sample.gif (the same 8 videos in a 4 x 2 grid), and prints the quality figures.

MoCoGAN's actions folders are numbered (0, 1, 3, 4); the shipped config names each category
after the Weizmann action its folder holds (ACTIONS), so `info`, `--help` and the server show
names rather than folder numbers.

The quality figures need the run's video critic (RUN_DIR/checkpoint/networks.safetensors).
`--evaluate-only` writes them to RUN_DIR/quality.json and ships nothing, so a run trained on
another machine can be judged there and shipped from its weights and quality.json alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from vidsynth.atomic import atomic_file
from vidsynth.train.checkpoint import CHECKPOINT_DIR
from vidsynth.train.config import TrainConfig
from vidsynth.train.data import load_folder
from vidsynth.train.discriminators import VideoDiscriminator
from vidsynth.train.evaluate import quality_figures
from vidsynth.train.loop import WEIGHTS_DIR, export_run
from vidsynth.train.sampler import ClipSampler
from vidsynth.train.sheets import render_videos, sheet, write_png
from vidsynth.weights import DEFAULT_WEIGHTS_DIR, load_model
from vidsynth.weights.format import read_config, save_weights

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_SEED = 7
QUALITY_FILE = "quality.json"
MODEL_CARD = "MODEL_CARD.md"
# The Weizmann action in each of MoCoGAN's data/actions class folders.
ACTIONS = {"0": "one-hand wave", "1": "two-hand wave", "3": "jumping jack", "4": "bend"}


def video_critic(run_dir: Path, config: TrainConfig, n_categories: int) -> VideoDiscriminator:
    critic = VideoDiscriminator(3, config.ndf, config.image_size, n_categories)
    tensors = load_file(str(run_dir / CHECKPOINT_DIR / "networks.safetensors"))
    critic.load_state_dict(
        {k[len("video_critic.") :]: v for k, v in tensors.items() if k.startswith("video_critic.")}
    )
    return critic


def write_gif(videos: np.ndarray, path: Path, columns: int = 4, fps: int = 8) -> None:
    import imageio.v3 as iio

    b, t, h, w, c = videos.shape
    rows = (b + columns - 1) // columns
    frames = np.zeros((t, rows * h, columns * w, c), np.uint8)
    for i in range(b):
        r, col = divmod(i, columns)
        frames[:, r * h : (r + 1) * h, col * w : (col + 1) * w] = videos[i]
    with atomic_file(path) as tmp:
        iio.imwrite(tmp, frames, extension=".gif", duration=1000 / fps, loop=0)


def evaluate(run: Path, data_dir: str) -> dict:
    record = json.loads((run / CHECKPOINT_DIR / "state.json").read_text())
    config = TrainConfig.from_dict(record["train_config"])
    model = load_model(run / WEIGHTS_DIR)
    sampler = ClipSampler(load_folder(data_dir), config.image_size, config.clip_frames, config.frame_step)
    critic = video_critic(run, config, model.config.n_categories)
    figures = quality_figures(model, sampler, n_videos=64, seed=0, video_critic=critic)
    figures["steps"] = record["step"]
    figures["train_wall_time_s"] = round(record["elapsed_s"], 1)
    return figures


def ship_weights(run: Path) -> None:
    """The run's generator as the default weights, its categories named after their actions."""
    export_run(run, DEFAULT_WEIGHTS_DIR, force=True)  # replaces the whole directory
    model = load_model()
    folders = model.config.category_names
    if folders and all(name in ACTIONS for name in folders):
        _, provenance = read_config(DEFAULT_WEIGHTS_DIR)
        for key in ("vidsynth_version", "saved_at"):
            provenance.pop(key, None)
        model.config = model.config.replace(category_names=tuple(ACTIONS[name] for name in folders))
        save_weights(model, DEFAULT_WEIGHTS_DIR, provenance, force=True)


def write_json(data: dict, path: Path) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def stored_figures(run: Path) -> dict | None:
    """RUN_DIR/quality.json, if it was measured on the run's latest step."""
    path = run / QUALITY_FILE
    if not path.is_file():
        return None
    figures = json.loads(path.read_text())
    step = json.loads((run / CHECKPOINT_DIR / "state.json").read_text())["step"]
    return figures if figures.get("steps") == step else None


def main(run_dir: str, data_dir: str, evaluate_only: bool = False) -> None:
    torch.set_num_threads(1)
    run = Path(run_dir)
    if evaluate_only:
        figures = evaluate(run, data_dir)
        write_json(figures, run / QUALITY_FILE)
        print(json.dumps(figures, indent=2))
        return
    has_critic = (run / CHECKPOINT_DIR / "networks.safetensors").is_file()
    figures = evaluate(run, data_dir) if has_critic else stored_figures(run)
    if figures is None:
        sys.exit(
            f"{run} has neither its checkpoint's critic nor a {QUALITY_FILE} of its latest step: "
            "run --evaluate-only where the run's checkpoint is"
        )
    card = DEFAULT_WEIGHTS_DIR / MODEL_CARD
    card_text = card.read_text() if card.is_file() else None
    ship_weights(run)
    if card_text is not None:
        card.write_text(card_text)  # hand-written: update its figures after shipping
    model = load_model()
    write_json(figures, DEFAULT_WEIGHTS_DIR / QUALITY_FILE)
    videos = render_videos(model, 8, 16, SAMPLE_SEED)
    (ROOT / "docs").mkdir(exist_ok=True)
    write_png(sheet(videos), ROOT / "docs" / "samples.png")
    write_gif(videos, ROOT / "docs" / "sample.gif")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    args = sys.argv[1:]
    evaluate_only = args[:1] == ["--evaluate-only"]
    args = args[1:] if evaluate_only else args
    if len(args) != 2:
        sys.exit(__doc__)
    main(args[0], args[1], evaluate_only)
