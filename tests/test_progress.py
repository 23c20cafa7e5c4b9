"""Progress off a terminal: plain lines on the stream, as the work goes (not only at the end)."""

import io

from symmft.progress import progress


def test_off_a_terminal_progress_is_plain_periodic_lines():
    stream = io.StringIO()  # not a terminal: tqdm's disable=None would have printed nothing here
    with progress(4, "train lstm", "step", stream=stream, every=0.0) as bar:
        bar.update(1)
        bar.set_postfix(loss="0.41")
        bar.update(3)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("symmft: train lstm: 1/4 steps (25%), ")
    assert lines[1].startswith("symmft: train lstm: 4/4 steps (100%), ") and lines[1].endswith("loss=0.41")
    assert len(lines) == 3  # and one at the end


def test_disabled_progress_prints_nothing():
    stream = io.StringIO()
    with progress(4, "x", stream=stream, enabled=False) as bar:
        bar.update(4)
    assert stream.getvalue() == ""
