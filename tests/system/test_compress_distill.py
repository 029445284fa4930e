"""Distillation on real data: the bundled digits CNN teaches a student with under a quarter of its parameters."""

from __future__ import annotations

import json

from compress_fixtures import STUDENT_BN, TEACHER, digits_fixture, onnx_only_target_fixture  # noqa: F401 (fixtures)

from edgekit.compress import distill


def test_distilled_student_beats_the_student_alone_or_nears_the_teacher(digits, onnx_only_target, tmp_path):
    result = distill(TEACHER, STUDENT_BN, train=digits["train"], val=digits["val"], out=tmp_path / "student",
                     epochs=10, lr=1e-2, temperature=4.0, soft_weight=0.7, hard_weight=0.3, baseline=True, threads=1,
                     measure_target=str(onnx_only_target))
    metrics = result.record["metrics"]
    teacher, student = metrics["teacher"], metrics["after"]
    alone = metrics["student_alone"]["val_accuracy"]
    assert student["params"] <= teacher["params"] / 4
    print(f"teacher {teacher['val_accuracy']:.4f}, distilled {student['val_accuracy']:.4f}, alone {alone:.4f}")
    assert student["val_accuracy"] > alone or student["val_accuracy"] >= teacher["val_accuracy"] - 0.02
    assert student["val_accuracy"] > metrics["student_untrained"]["val_accuracy"] + 0.5
    record = json.loads((result.out_dir / "compressed.json").read_text())
    provenance = record["provenance"]
    assert provenance["teacher"]["model"] == TEACHER and provenance["teacher"]["params"] == teacher["params"]
    assert provenance["temperature"] == 4.0 and provenance["soft_weight"] == 0.7 and provenance["hard_weight"] == 0.3
    history = record["training"]["history"]
    assert len(history) == 10 and record["training"]["best_val_accuracy"] == max(h["val_accuracy"] for h in history)
    assert any("points from distillation" in note for note in record["notes"])
    onnx_row = metrics["runtimes"]["onnx"]  # teacher and student exported and timed together
    assert onnx_row["after"]["file_bytes"] < onnx_row["before"]["file_bytes"] / 3
    assert any(note.startswith("FP32 p50, teacher → student") for note in record["notes"])
