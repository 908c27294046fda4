"""Shared scene settings of the vision tests."""

from __future__ import annotations

from store_edge.sim.generate import ScenarioMix

UNSPACED = ScenarioMix(body_spacing_m=0.0)
"""The scenes the hand and split tests were written for: people at a shelf placed anywhere within 0.25 m
of the spot in front of the plates, as random scenarios were before they kept bodies apart. On spaced
scenes the hand finder misses arms reaching from 0.35-0.65 m out (docs/vision.md), so these tests keep
checking what they checked. The 3-shopper end-to-end test runs on a spaced scene since the detector was
retrained on both kinds."""
