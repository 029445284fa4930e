"""Runtime runners (no torch): load a model, run float in -> float out, benchmark like the standard tools."""
