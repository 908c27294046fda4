"""The shipped recordings are current (their generator reproduces them) and complete."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mcap.reader import make_reader

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from make_sample_recordings import SAMPLES, SampleRecording, make

RECORDINGS = ROOT / "sample_data" / "recordings"


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_shipped_recording_is_readable_and_has_truth(sample: SampleRecording) -> None:
    path = RECORDINGS / f"{sample.name}.mcap"
    assert path.exists(), "run `make recordings`"
    assert path.stat().st_size < 8_000_000  # a few MB each
    with open(path, "rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None
    topics = {c.topic for c in summary.channels.values()}
    for needed in ("truth/actions", "truth/receipts", "truth/visits", "truth/positions"):
        assert needed in topics
    assert any("/weight/" in t for t in topics)
    assert any("/curtain/" in t for t in topics)


def test_generator_reproduces_the_scripted_recording(tmp_path: Path) -> None:
    fresh = make(SAMPLES[0], tmp_path)
    assert fresh.read_bytes() == (RECORDINGS / fresh.name).read_bytes(), "stale: run `make recordings`"
