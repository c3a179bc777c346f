"""`modhub retrain audio` on spoken commands made with espeak-ng, against logistic regression.

    python bench/bench_retrain_audio.py [--module DIR] [--zoo DIR]

Data: 8 command words (Speech Commands' yes/no/up/down/left/right/stop/go) spoken by 10
espeak-ng "speakers" (accent + voice variant + speed), 3 pitches each: 240 clips. The classifier
is trained on speakers 0-6 and tested on the 3 speakers it never heard (72 clips). Features
are the frame embeddings of the base module (modhub/speech-embedding/1), mean-pooled per clip.

Prints: accuracy of the retrained module (hub.load of its directory, on WAV files) and of
scikit-learn's LogisticRegression (default C, standardised) on the same pooled features.
Needs espeak-ng (apt-get install espeak-ng) and scikit-learn.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")
# (espeak-ng voice, words per minute): accents, male/female variants, slow to fast.
SPEAKERS = (
    ("en-us", 140),
    ("en-gb", 120),
    ("en-gb-scotland", 160),
    ("en-us+f3", 170),
    ("en-gb-x-rp+m3", 130),
    ("en-029", 150),
    ("en-gb-x-gbclan+f2", 110),
    # held out: never trained on
    ("en-us+m7", 180),
    ("en-gb-x-gbcwmd+f4", 135),
    ("en-gb-scotland+m2", 125),
)
TRAIN_SPEAKERS = 7
PITCHES = (35, 50, 65)


def make_clips(root: Path) -> tuple[Path, Path]:
    """root/train/<word>/*.wav and root/test/<word>/*.wav."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise SystemExit("needs espeak-ng: apt-get install espeak-ng")
    for s, (voice, speed) in enumerate(SPEAKERS):
        split = "train" if s < TRAIN_SPEAKERS else "test"
        for word in WORDS:
            folder = root / split / word
            folder.mkdir(parents=True, exist_ok=True)
            for pitch in PITCHES:
                out = folder / f"s{s}-p{pitch}.wav"
                cmd = [espeak, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), word]
                subprocess.run(cmd, check=True, timeout=30)
    return root / "train", root / "test"


def clips_of(folder: Path) -> tuple[list[Path], list[str]]:
    paths = sorted(folder.glob("*/*.wav"))
    return paths, [p.parent.name for p in paths]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--module", help="directory of the speech-embedding module (default: build it)")
    parser.add_argument("--zoo", default=str(Path(tempfile.gettempdir()) / "modhub-bench-zoo"))
    args = parser.parse_args()

    import modhub as hub
    from modhub.retrain import retrain_audio
    from modhub.settings import Settings

    module = args.module
    if module is None:
        from modhub.zoo import build_zoo

        module = str(build_zoo(args.zoo, only=["speech-embedding"], progress=False)[0])
    with tempfile.TemporaryDirectory(prefix="modhub-bench-audio-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        train_dir, test_dir = make_clips(root / "data")
        print(
            f"espeak-ng clips: {len(clips_of(train_dir)[0])} train, {len(clips_of(test_dir)[0])} test "
            f"({time.perf_counter() - started:.1f} s)"
        )
        settings = Settings.from_env().model_copy(update={"cache": root / "cache"})

        started = time.perf_counter()
        result = retrain_audio(train_dir, module, root / "commands", settings=settings, progress=False)
        seconds = time.perf_counter() - started
        timings = result.report["timings"]
        print("  timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items() if k.endswith("_s")))
        classifier = hub.load(root / "commands", output="numpy")
        test_paths, test_words = clips_of(test_dir)
        predicted = [classifier.labels[int(np.asarray(classifier(p)).argmax())] for p in test_paths]
        ours = float(np.mean([a == b for a, b in zip(predicted, test_words, strict=True)]))
        print(
            f"retrain audio: {seconds:.1f} s, cross-validated accuracy (train speakers) {result.accuracy:.3f}"
        )

        # Baseline: the same pooled features, scikit-learn's logistic regression (standardised).
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        base = hub.load(module, output="numpy")

        def pooled(paths: list[Path]) -> np.ndarray:
            return np.stack([np.asarray(base(p))[0].mean(0) for p in paths])

        train_paths, train_words = clips_of(train_dir)
        baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        baseline.fit(pooled(train_paths), train_words)
        theirs = float(baseline.score(pooled(test_paths), test_words))
        chance = 1 / len(WORDS)
        print(f"held-out speakers ({len(test_paths)} clips, chance {chance:.3f}):")
        print(f"  modhub retrain audio            accuracy {ours:.3f}")
        print(f"  sklearn LogisticRegression      accuracy {theirs:.3f}")
        print(f"  ratio (modhub / sklearn)        {ours / max(theirs, 1e-9):.3f}")


if __name__ == "__main__":
    main()
