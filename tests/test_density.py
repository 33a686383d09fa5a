"""Forest.density: the kernel against AWS's interpolation visitor written out, AWS's fan of blades, peers."""

import warnings

import numpy as np
import pytest

from rcforest import Forest
from rcforest._density import density_from_measure, interpolation_batch
from tests import naive


def fan(seed, per_blade=1000, blades=3):
    """AWS's dynamic density data: three blades (sd 0.05 across, 0.2 along) 0.6 out, at 0, 120, 240 degrees."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(per_blade * blades, 2)) * [0.05, 0.2]
    theta = 2 * np.pi * rng.integers(1, blades + 1, size=len(base)) / blades
    c, s = np.cos(theta), np.sin(theta)
    return np.column_stack([c * base[:, 0] + s * base[:, 1] + 0.6 * s, -s * base[:, 0] + c * base[:, 1] + 0.6 * c])


def rotate(points, degree):
    """Rotate clockwise by ``degree`` degrees."""
    theta = 2 * np.pi * degree / 360
    c, s = np.cos(theta), np.sin(theta)
    return np.column_stack([c * points[:, 0] + s * points[:, 1], -s * points[:, 0] + c * points[:, 1]])


def fan_densities(degrees, seed=72345):
    data = fan(seed)
    out = {}
    for degree in degrees:
        forest = Forest(num_trees=50, sample_size=256, random_state=17).fit(rotate(data, degree))
        density, high, low = forest.density([[0.7, 0.0]], directional=True)
        out[degree] = (density[0], high[0], low[0])
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_kernel_matches_the_visitor_written_out(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 3))
    X[1::5] = X[::5][: len(X[1::5])]  # duplicates: leaves of mass > 1
    forest = Forest(num_trees=6, sample_size=40, random_state=seed).fit(X)
    trees = forest._trees
    queries = np.vstack([rng.normal(size=(5, 3)) * 2, X[:3]]) - trees.origin  # stored points too
    measure = np.empty((len(queries), 6, 3))
    interpolation_batch(trees, queries, measure)
    for q, query in enumerate(queries):
        per_tree = np.array([naive.interpolation_measure(trees, t, list(query)) for t in range(forest.num_trees)])
        np.testing.assert_allclose(measure[q], per_tree.mean(axis=0), rtol=1e-9, atol=1e-12)
        expected = naive.density_of(per_tree.mean(axis=0).tolist(), forest.sample_size)
        density, high, low = forest.density([query + trees.origin], directional=True)
        assert density[0] == pytest.approx(expected[0], rel=1e-9)
        np.testing.assert_allclose(high[0], expected[1], rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(low[0], expected[2], rtol=1e-9, atol=1e-15)
        assert high[0].sum() + low[0].sum() == pytest.approx(density[0], rel=1e-9)


def test_many_rows_give_what_each_row_gives_alone():
    # The kernel works tree after tree over blocks of rows: across blocks, each row's sums run in tree order.
    rng = np.random.default_rng(8)
    X = rng.normal(size=(500, 3))
    forest = Forest(num_trees=7, sample_size=32, random_state=8).fit(X)
    queries = np.vstack([rng.normal(size=(150, 3)) * 1.5, X[:50]])  # stored points too
    density, high, low = forest.density(queries, directional=True)
    for q, query in enumerate(queries):
        alone = forest.density(query[None, :], directional=True)
        assert (density[q], list(high[q]), list(low[q])) == (alone[0][0], list(alone[1][0]), list(alone[2][0]))


def test_one_row_as_an_array_a_list_or_a_row_gives_its_batch_values():
    # One plain row takes a serial kernel through the forest's handle: the same bits as in a batch.
    rng = np.random.default_rng(18)
    X = rng.normal(size=(400, 3))
    forest = Forest(num_trees=7, sample_size=32, random_state=18).fit(X)
    queries = np.vstack([rng.normal(size=(30, 3)) * 1.5, X[:10]])  # stored points too
    density, high, low = forest.density(queries, directional=True)
    for q, query in enumerate(queries):
        for row in (query, list(query), query[None, :]):
            alone = forest.density(row, directional=True)
            assert [part.shape for part in alone] == [(1,), (1, 3), (1, 3)]
            assert (alone[0][0], list(alone[1][0]), list(alone[2][0])) == (density[q], list(high[q]), list(low[q]))
            assert forest.density(row)[0] == density[q]


def test_one_row_whose_powers_overflow_gives_its_batch_values_without_a_warning():
    # 80 dimensions at a scale of 1e4: a ratio to the 80th power overflows; numpy's exp is told to stay quiet.
    rng = np.random.default_rng(3)
    forest = Forest(num_trees=5, sample_size=32, random_state=3).fit(rng.normal(size=(300, 80)) * 1e4)
    query = rng.normal(size=80) * 1e4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        alone = forest.density(query, directional=True)
        batch = forest.density(query[None, :], directional=True)
    for mine, expected in zip(alone, batch):
        np.testing.assert_array_equal(mine, expected)


def numpy_density(measure, sample_size):
    """The density from a measure as numpy's array operations give it (the formula of density_from_measure)."""
    dim = measure.shape[2]
    total = measure[:, 0].sum(axis=1) + measure[:, 1].sum(axis=1)
    points = total / sample_size
    distance, mass = measure[:, 2] + measure[:, 3], measure[:, 4] + measure[:, 5]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where(mass > 0, distance / np.where(mass > 0, mass, 1.0), 0.0)
        factors = np.where(ratio > 0, np.exp(np.log(np.where(ratio > 0, ratio, 1.0)) * dim) * mass, 0.0)
        density = np.where(points > 0, points / (0.001 * points + factors.sum(axis=1)), 0.0)
        share = np.where(total > 0, density / np.where(total > 0, total, 1.0), 0.0)
    return density, measure[:, 0] * share[:, None], measure[:, 1] * share[:, None]


@pytest.mark.parametrize("dim", [1, 7, 8, 100, 129, 300, 1000])
def test_density_from_measure_sums_in_numpys_order(dim):
    # The jitted sums add in numpy's pairwise order (blocks of eight, halves beyond 128): numpy's bits.
    rng = np.random.default_rng(dim)
    measure = rng.random((4, 6, dim)) * 10.0 ** rng.integers(-6, 6, size=(4, 6, dim))
    measure[rng.random(measure.shape) < 0.3] = 0.0
    measure[0] = 0.0
    got = density_from_measure(measure, 256)
    for mine, expected in zip(got, numpy_density(measure, 256)):
        np.testing.assert_array_equal(mine, expected)


def test_fan_of_blades_dense_on_a_blade_and_directional():
    """AWS's dynamic density test: a blade lies over (0.7, 0) at 90, 210 and 330 degrees of rotation."""
    degrees = range(0, 360, 10)
    out = fan_densities(degrees)
    on = [d for d in degrees if any(abs(d - c) <= 15 for c in (90, 210, 330))]
    off = [d for d in degrees if d <= 60 or 120 <= d <= 180 or 240 <= d <= 300]
    assert min(out[d][0] for d in on) > 2 * max(out[d][0] for d in off)
    for degree, (value, high, low) in out.items():
        above, below, left, right = low[1], high[1], high[0], low[0]  # where the sample lies from the query
        slack = 0.1 * value
        if degree % 120 == 80:  # the blade just above the query
            assert above + slack > below and above + slack > right
        if degree % 120 == 100:  # just below
            assert below + slack > above and below + slack > right
        if degree % 120 in (60, 70):
            assert above + slack > left and above + slack > right
        if degree % 120 in (110, 0) and degree:
            assert below + slack > left and below + slack > right
        if degree % 120 in (20, 30, 40):  # the fan farthest to the left
            assert left + slack > above + below + right
            assert above + below + slack > right


def test_density_agrees_in_kind_with_krcf():
    krcf = pytest.importorskip("krcf")
    data = fan(3)
    ours = Forest(num_trees=50, sample_size=256, random_state=3).fit(data)
    peer = krcf.RandomCutForest(
        {"dimensions": 2, "shingle_size": 1, "num_trees": 50, "sample_size": 256, "random_seed": 3}
    )
    for x in np.random.default_rng(3).permutation(data):
        peer.update(x.tolist())
    grid = np.array([[x, y] for x in np.linspace(-1, 1, 9) for y in np.linspace(-1, 1, 9)])
    mine = ours.density(grid)
    theirs = np.array([peer.density(q.tolist()) for q in grid])
    ranks = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    assert np.corrcoef(ranks(mine), ranks(theirs))[0, 1] > 0.8


def test_shingles_pandas_and_save_load_continue(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(4)
    series = pd.Series(np.sin(np.arange(1200) / 9) + 0.05 * rng.normal(size=1200), name="v")
    forest = Forest(num_trees=20, sample_size=128, shingle_size=5, time_decay=0.01, random_state=4)
    forest.update(series[:800])
    density = forest.density(series[800:900])
    assert isinstance(density, pd.Series) and density.isna().sum() == 4 and (density.dropna() > 0).all()
    forest.save(tmp_path / "f.rcf")
    loaded = Forest.load(tmp_path / "f.rcf")
    for a, b in zip(forest.density(series[800:900], directional=True), loaded.density(series[800:900], True)):
        pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))
    forest.update(series[900:])
    loaded.update(series[900:])
    np.testing.assert_array_equal(forest.density(series[:50]), loaded.density(series[:50]))


def test_one_bad_row_is_refused_as_in_a_batch():
    # One plain row's values are checked by the serial kernel: a row it refuses gets the general path's message.
    forest = Forest(num_trees=5, sample_size=32, random_state=5).fit(np.random.default_rng(5).normal(size=(100, 2)))
    for bad in (np.nan, np.inf, -np.inf, 1e31):
        for row in (np.array([0.0, bad]), np.array([[bad, 0.0]]), [0.0, bad], [bad, 1]):
            with pytest.raises(ValueError, match="pass finite values|magnitudes up to|NaN|infinite"):
                forest.density(row)
    with pytest.raises(ValueError, match="magnitudes up to|finite"):
        forest.density([10**40, 0.0])
    # A row that is not C-ordered goes the general way: the same values.
    rows = np.random.default_rng(6).normal(size=(2, 4))
    assert forest.density(rows[0, ::2])[0] == forest.density(rows[:, ::2])[0]


def test_bad_input_is_refused():
    forest = Forest(num_trees=5, sample_size=32, random_state=5).fit(np.random.default_rng(5).normal(size=(100, 2)))
    with pytest.raises(ValueError, match="holds no data"):
        Forest().density([[0.0, 0.0]])
    with pytest.raises(ValueError, match="NaN"):
        forest.density([[np.nan, 0.0]])
    with pytest.raises(ValueError, match="X has 3 features"):
        forest.density([[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="empty"):
        forest.density(np.empty((0, 2)))
    with pytest.raises(TypeError, match="directional"):
        forest.density([[0.0, 0.0]], directional="yes")


def test_a_corrupt_tree_raises_in_every_query():
    # A tree whose root is its own child: every walk through it would not end; each query says so.
    rng = np.random.default_rng(10)
    forest = Forest(num_trees=4, sample_size=32, shingle_size=2, random_state=10).update(rng.normal(size=200))
    trees = forest._trees
    root = trees.root[1]
    trees.left[1, root] = trees.right[1, root] = root
    point = rng.normal(size=2)
    calls = [
        lambda: forest.density(rng.normal(size=70)),
        lambda: forest.impute(np.r_[rng.normal(size=69), np.nan]),
        lambda: forest.near_neighbors(point),
        lambda: forest.conditional_summary([point[0], np.nan]),
        lambda: forest.extrapolate(3),
    ]
    for call in calls:
        with pytest.raises(RuntimeError, match="corrupt"):
            call()
    # One row of a forest without shingles takes the serial kernels: they say so too.
    forest = Forest(num_trees=4, sample_size=32, random_state=10).update(rng.normal(size=(200, 2)))
    trees = forest._trees
    root = trees.root[2]
    trees.left[2, root] = trees.right[2, root] = root
    for call in (lambda: forest.density(point), lambda: forest.impute([point[0], np.nan])):
        with pytest.raises(RuntimeError, match="corrupt"):
            call()
