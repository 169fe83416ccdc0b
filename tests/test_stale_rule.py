"""The stale rule (trials.Silence): silence is timed between a watcher's own reads, never inside them."""

from __future__ import annotations

from datetime import datetime

from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from snakesweep.trials import HEARTBEAT, SURPLUS, Silence


def running(number: int, beat: float | None, **system_attrs: object) -> FrozenTrial:
    attrs = {} if beat is None else {HEARTBEAT: beat}
    return FrozenTrial(number=number, trial_id=number, state=TrialState.RUNNING, value=None, values=None,
                       datetime_start=datetime(2025, 1, 1), datetime_complete=None, params={"x": 0.5},
                       distributions={"x": FloatDistribution(0, 1)}, user_attrs={},
                       system_attrs={**attrs, **system_attrs}, intermediate_values={})


def test_a_trial_is_stale_after_twice_the_heartbeat_of_silence_between_reads():
    silence = Silence(heartbeat_s=10)  # stale after 20 s
    assert silence.stale([running(0, 1.0)], 0, 1) == []
    assert silence.stale([running(0, 1.0)], 11, 12) == []  # 10 s silent
    (stale,) = silence.stale([running(0, 1.0)], 22, 23)  # 20 s silent
    assert stale.number == 0
    assert silence.confirmed(running(0, 1.0), waited_s=0.1)


def test_time_inside_a_read_does_not_count():
    silence = Silence(heartbeat_s=10)
    silence.stale([running(0, 1.0)], 0, 1)
    # Each read takes 30 s (a starved process, a stalled server), 1 s passes between reads.
    for start in range(2, 200, 31):
        assert silence.stale([running(0, 1.0)], start, start + 30) == []


def test_a_new_beat_starts_the_count_again():
    silence = Silence(heartbeat_s=10)
    silence.stale([running(0, 1.0)], 0, 0)
    silence.stale([running(0, 1.0)], 15, 15)
    assert silence.stale([running(0, 2.0)], 30, 30) == [], "a new beat"
    assert silence.stale([running(0, 2.0)], 45, 45) == []
    assert [t.number for t in silence.stale([running(0, 2.0)], 50, 50)] == [0]


def test_a_confirming_read_that_waited_for_the_writers_starts_the_count_again():
    silence = Silence(heartbeat_s=10)
    silence.stale([running(0, 1.0)], 0, 0)
    assert silence.stale([running(0, 1.0)], 25, 25)
    assert not silence.confirmed(running(0, 1.0), waited_s=5), "writes were held up: the beat may be among them"
    assert silence.stale([running(0, 1.0)], 30, 30) == [], "the count starts again"
    assert not silence.confirmed(running(0, 3.0), waited_s=0), "a beat landed meanwhile"


def test_an_inherited_beat_surplus_claims_and_other_states_are_never_judged():
    silence = Silence(heartbeat_s=1)
    old = running(0, 1.0)
    requeued = running(1, 1.0)  # the retry callback copied the old trial's beat
    silence.stale([old], 0, 0)
    assert [t.number for t in silence.stale([old, requeued], 5, 5)] == [0], "the copy's count starts at its first read"
    surplus = running(2, None, **{SURPLUS: True})
    silence.stale([surplus], 10, 10)
    assert silence.stale([surplus], 20, 20) == []
    done = running(3, 1.0)
    done.state = TrialState.COMPLETE
    silence.stale([done], 30, 30)
    assert silence.stale([done], 40, 40) == []
