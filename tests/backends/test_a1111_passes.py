"""Which sampling pass A1111's job counter is in, from its /progress `state`."""

from __future__ import annotations

from stablenew.backends.a1111_progress import pass_of

HIRES = ("", "hires")


def state(job_no: int, job_count: int = 2) -> dict[str, int]:
    return {"job_no": job_no, "job_count": job_count, "sampling_step": 0, "sampling_steps": 16}


def test_each_image_is_a_first_pass_then_a_hires_pass():
    assert pass_of(state(0, 4), HIRES) == ("", True)
    assert pass_of(state(1, 4), HIRES) == ("hires", False)
    assert pass_of(state(2, 4), HIRES) == ("", True)
    assert pass_of(state(3, 4), HIRES) == ("hires", False)


def test_after_the_last_pass_it_is_still_the_last_pass_while_the_images_are_saved():
    """The counter reaches job_count once every pass is done, while the server decodes and
    saves: the status bar said "step 0/16" of a first pass there (a flaky window test)."""
    assert pass_of(state(2, 2), HIRES) == ("hires", False)
    assert pass_of(state(4, 4), HIRES) == ("hires", False)


def test_without_hires_there_is_one_pass():
    assert pass_of(state(3, 4), ("",)) == ("", False)
