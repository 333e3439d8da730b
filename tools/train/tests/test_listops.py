import random

from latte_train.listops import encode, evaluate, sample


def test_operators_follow_the_lra_rules():
    # [MAX 2 9 [MIN 4 7 ] 0 ] = 9; [MED 1 5 2 8] = (2 + 5) // 2 = 3; [SM 7 8 9] = 4
    t = ("MAX", [2, 9, ("MIN", [4, 7]), 0])
    assert encode(t) == "X29N47]0]"
    assert evaluate(t) == 9
    assert evaluate(("MED", [1, 5, 2, 8])) == 3
    assert evaluate(("MED", [1, 5, 2])) == 2
    assert evaluate(("SM", [7, 8, 9])) == 4
    assert evaluate(("MIN", [("SM", [5, 5]), 3])) == 0


def test_samples_are_in_range_and_balanced_enough():
    rng = random.Random(1)
    ys = []
    for _ in range(200):
        x, y = sample(rng, 20, 100, 10, 10)
        assert 20 <= len(x) <= 100 and 0 <= y <= 9
        assert set(x) <= set(b"0123456789XNDS]")
        assert x.count(b"]") == sum(x.count(c) for c in (b"X", b"N", b"D", b"S"))
        ys.append(y)
    assert len(set(ys)) == 10
