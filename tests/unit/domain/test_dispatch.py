from __future__ import annotations

from domain.dispatch import Candidate, DispatchRules, pick, rank

RULES = DispatchRules(wave_size=2, first_radius_m=2_000, radius_factor=2, max_radius_m=16_000)


def test_radius_widens_wave_by_wave_up_to_the_limit() -> None:
    assert [RULES.radius(w) for w in range(1, 7)] == [2_000, 4_000, 8_000, 16_000, 16_000, 16_000]
    assert RULES.max_waves == 5  # 2, 4, 8, 16 km, and once more at 16 km


def test_nearest_first_and_already_offered_skipped() -> None:
    cs = [Candidate("c", 900), Candidate("a", 100), Candidate("b", 500)]
    assert [c.driver_id for c in pick(cs, RULES, excluded=set())] == ["a", "b"]
    assert [c.driver_id for c in pick(cs, RULES, excluded={"a"})] == ["b", "c"]


def test_a_driver_who_ignores_offers_is_offered_later_not_never() -> None:
    responsive = Candidate("r", 500, offered=20, ignored=0)
    ignorer = Candidate("i", 450, offered=20, ignored=18)
    assert [c.driver_id for c in rank([ignorer, responsive], RULES)] == ["r", "i"]
    # but a much nearer ignorer still comes before a far responsive driver
    near_ignorer = Candidate("i", 100, offered=20, ignored=18)
    assert [c.driver_id for c in rank([responsive, near_ignorer], RULES)] == ["i", "r"]
    # a newcomer is not punished for having no history
    assert (
        rank([Candidate("new", 300), Candidate("old", 310, offered=50)], RULES)[0].driver_id
        == "new"
    )
