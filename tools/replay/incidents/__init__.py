"""The bundled demo recordings (`*.json`, read by `tools.replay.recording.bundled_incidents`).

Regenerate them with `python -m tools.replay.incidents.build_demo_incidents` (deterministic).
"""
