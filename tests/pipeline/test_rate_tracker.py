"""RateTracker and SpeedBook on recorded timings: noise, a node that slows down, a prior."""

from __future__ import annotations

import random

import pytest

from stablenew.pipeline.eta import RateTracker, SpeedBook

# Seconds per image of a node measured in a run: ±30% around 1.0, then the node halves its speed.
STEADY = [1.12, 0.81, 0.95, 1.27, 0.74, 1.05, 0.88, 1.21, 0.93, 1.09, 0.79, 1.16]
SLOWER = [2.31, 1.62, 2.08, 2.44, 1.71, 2.19, 1.95, 2.52, 1.83, 2.27]


def test_a_steady_node_is_estimated_within_its_noise():
    tracker = RateTracker()
    for seconds in STEADY:
        tracker.observe(seconds)
    assert tracker.value == pytest.approx(1.0, rel=0.12)


def test_a_node_that_halves_its_speed_is_followed_within_three_images():
    tracker = RateTracker()
    for seconds in STEADY:
        tracker.observe(seconds)
    seen = []
    for seconds in SLOWER:
        tracker.observe(seconds)
        seen.append(tracker.value)
    assert seen[2] == pytest.approx(2.0, rel=0.15), seen  # three images after the change
    assert all(v == pytest.approx(2.0, rel=0.2) for v in seen[2:]), seen


def test_one_slow_image_is_a_hiccup_not_a_new_speed():
    tracker = RateTracker()
    for seconds in STEADY:
        tracker.observe(seconds)
    before = tracker.value
    tracker.observe(5.0)  # the node paused once (a save, another request)
    assert tracker.value == pytest.approx(before, rel=0.5)
    assert tracker.value < 2.0
    tracker.observe(1.0)
    assert tracker.value < 1.8


def test_a_prior_is_replaced_by_the_first_measurement():
    tracker = RateTracker(5.0)  # a guess from the card's VRAM
    assert tracker.value == 5.0 and tracker.samples == 0
    tracker.observe(0.4)
    assert tracker.value == 0.4


def test_a_slow_first_image_model_loading_is_forgotten_within_a_few_images():
    tracker = RateTracker()
    tracker.observe(6.0)  # the model loaded during the first image
    for seconds in STEADY[:4]:
        tracker.observe(seconds)
    assert tracker.value == pytest.approx(1.0, rel=0.3)


def test_noise_alone_never_makes_the_estimate_jump():
    rng = random.Random(3)
    tracker = RateTracker()
    worst = 0.0
    for k in range(300):
        tracker.observe(rng.uniform(0.7, 1.3))
        if k > 10:
            worst = max(worst, abs(tracker.value - 1.0))
    assert worst < 0.3


def test_speed_book_keeps_units_per_second_and_falls_back_to_the_nodes_other_sizes():
    book = SpeedBook({"gpu": {"small": 4.0}})  # 4 units per second, learnt before
    assert book.seconds_per_unit("gpu", "small") == pytest.approx(0.25)
    assert book.seconds_per_unit("gpu", "large") == pytest.approx(0.25)  # measured at one size
    assert book.seconds_per_unit("other", "small") is None
    book.observe("other", "small", units=10, seconds=5)
    assert book.seconds_per_unit("other", "small") == pytest.approx(0.5)
    assert book.units_per_second() == {"gpu": {"small": pytest.approx(4.0)},
                                       "other": {"small": pytest.approx(2.0)}}
    # What was read from disk never overrides what this session measured.
    book.merge({"other": {"small": 100.0}, "third": {"medium": 1.0}})
    assert book.seconds_per_unit("other", "small") == pytest.approx(0.5)
    assert book.seconds_per_unit("third", "medium") == pytest.approx(1.0)
