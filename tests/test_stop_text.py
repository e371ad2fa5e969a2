"""StopText: streamed text cut at the first stop string, whatever the split into deltas."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lmforge.inference.sampling import truncate_at_stop
from lmforge.inference.stop_text import StopText

# A small alphabet, so that stop strings and their prefixes occur often in random text.
TEXT = st.text(alphabet="ab\n<|é", max_size=40)
STOPS = st.lists(st.text(alphabet="ab\n<|é", min_size=1, max_size=4), max_size=3)


def _split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=300, deadline=None)
@given(TEXT, STOPS, st.lists(st.integers(0, 40), max_size=12))
def test_joined_output_is_the_text_cut_at_the_first_stop(text, stops, cuts):
    f = StopText(stops)
    shown = ""
    for delta in _split(text, cuts):
        shown += f.push(delta)
        # What is shown is always a prefix of the final answer and never a stop string.
        assert truncate_at_stop(text, stops).startswith(shown)
    shown += f.flush()
    assert shown == truncate_at_stop(text, stops)
    assert f.text == shown
    assert f.stopped == any(s in text for s in stops)


def test_a_tail_that_could_begin_a_stop_is_held_until_it_cannot():
    f = StopText(["</s>"])
    assert f.push("hello <") == "hello "  # "<" could begin "</s>"
    assert f.push("/") == ""
    assert f.push("x") == "</x"  # it cannot any more
    assert f.push(" ok</s> more") == " ok"
    assert f.stopped and f.text == "hello </x ok"
    assert f.push("ignored") == "" and f.flush() == ""


def test_flush_releases_the_held_tail_and_no_stops_pass_everything():
    f = StopText(["END"])
    assert f.push("the EN") == "the "
    assert f.flush() == "EN" and not f.stopped
    g = StopText([])
    assert g.push("a") == "a" and g.push("") == "" and g.flush() == ""
    assert StopText([""]).push("empty stops are ignored") == "empty stops are ignored"


def test_the_earliest_stop_wins_when_one_delta_holds_two():
    f = StopText(["cd", "b"])
    assert f.push("abcd") == "a" and f.stopped
