"""The query core's rules, alone: what a source may release, and the watermark chain across a restart."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from executor.query.release import keep_from
from executor.query.watermarks import NO_WATERMARK, Clock, WatermarkChain, WatermarkStep
from executor.state.clocks import SourceClock, query_watermark

retention = st.one_of(st.none(), st.integers(-(10**12), 10**12))


@given(st.dictionaries(st.integers(0, 5), retention), st.sets(st.integers(0, 5)))
def test_a_batch_releases_only_when_every_state_holder_reported(reported, holders):
    releases, keep = keep_from(reported, holders)
    assert releases == holders.issubset(reported)
    kept = [ms for ms in reported.values() if ms is not None]
    assert keep == (min(kept) if releases and kept else None)


def test_a_holder_that_did_not_report_releases_nothing_even_when_the_others_hold_no_rows():
    assert keep_from({0: None}, {0, 1}) == (False, None)
    assert keep_from({0: None, 1: 10_000}, {0, 1}) == (True, 10_000)


@given(
    st.lists(st.tuples(st.integers(0, 60_000), st.booleans()), min_size=1, max_size=12),
    st.integers(0, 60_000),
    st.integers(0, 12),
)
def test_a_restart_replays_without_watermark_then_resumes_from_the_committed_one(batches, restored, replayed):
    """Replayed batches close nothing and make nothing late; the first fresh batch closes what the previous
    run emitted (up to the restart watermark) silently and goes on from there, as without a restart."""
    chain = WatermarkChain({0: SourceClock(1000)})
    chain.resume_from({0: restored})
    reference = [SourceClock(1000)]
    reference[0].observe(restored, False)
    restart = query_watermark(reference, None)
    steps, fresh_seen = [], False
    for b, (max_ms, _) in enumerate(batches):
        is_replay = b < replayed
        steps.append(chain.step(b, lambda _: {0: Clock(max_ms, False, is_replay)}))
        reference[0].observe(max_ms, False)
        if is_replay and not fresh_seen:
            assert steps[-1] == NO_WATERMARK
        elif not fresh_seen:
            fresh_seen = True
            assert steps[-1] == WatermarkStep(restart, query_watermark(reference, restart), emitted_through=restart)
        else:
            assert steps[-1].emitted_through is None
            assert steps[-1].previous == steps[-2].current
