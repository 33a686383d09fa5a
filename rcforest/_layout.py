"""Which rows each tree of a batch fit holds: rcforest's reservoir or SageMaker's layout.

``Forest(sampling="reservoir")``, the default, gives every tree its own
sample without replacement, drawn by the tree's reservoir over all rows
(:func:`rcforest._kernels.select_sample`): trees overlap, and each holds
``min(N, sample_size)`` points.

``Forest(sampling="sagemaker")`` builds the forest the way the training
job of SageMaker's built-in Random Cut Forest does:

- when the ``N`` points fit in the forest, ``N <= num_trees * sample_size``,
  tree ``t`` holds the consecutive points ``t * k ... t * k + k - 1``, in
  input order, with ``k = N // num_trees`` (:func:`block_size`); the last
  ``N - num_trees * k`` points are unused;
- otherwise each tree samples ``sample_size`` points, as with the reservoir;
- each tree's score is scaled by ``log2(M)``, ``M`` the tree's mass, where
  the reservoir forest scales by ``log2(M + 1)`` as random-cut-forest-by-aws
  does (:data:`rcforest._score.SAGEMAKER_MASS_OFFSET`).

So a small training set gives small trees, each of one stretch of the
series, and scores on a larger scale than the reservoir forest's.

Notes
-----
The layout is read off what the built-in algorithm printed and returned
in public notebooks that ran it. Its training log for the 10,320 rows of
NYC taxi with 50 trees of 512 reads ``ForestInfo{num_trees: 50,
num_samples_in_forest: 10300, num_samples_per_tree: 206}``: 206 =
10320 // 50 points per tree, 20 unused. The node counts the logs print
per tree (twice the distinct values less one) match consecutive blocks for
all 200 trees logged, and none of 2,000 random partitions.

The scaling was chosen on the clickstream notebook (1,152 rows, 100 trees:
``k = 11``), where ``log2(k)`` and ``log2(k + 1)`` differ by 3.6%: with
``log2(M)`` the training scores' mean + 3 standard deviations come out
3.09-3.13 over 10 seeds (SageMaker: 3.11), their minimum 1.42-1.47 (1.45)
and maximum 2.90-2.91 (2.91), and the test day's scores within 1.5% of
SageMaker's on average; with ``log2(M + 1)``, the scale of
random-cut-forest-by-aws and of the reservoir forest, they come out
3.21-3.22, 1.48-1.50 and 2.99-3.01, 3.5% too high. From ``k`` of about 80
on the two differ by under 0.3%.
"""

from rcforest._score import AWS_MASS_OFFSET, SAGEMAKER_MASS_OFFSET

__all__ = ["SAMPLINGS", "block_size", "check_sampling", "mass_offset"]

SAMPLINGS = ("reservoir", "sagemaker")
"""The values of ``Forest(sampling=...)``."""


def check_sampling(sampling):
    """Return ``sampling`` if it is one of :data:`SAMPLINGS`, else raise ``ValueError``.

    Parameters
    ----------
    sampling : str

    Returns
    -------
    str
    """
    if not isinstance(sampling, str) or sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {', '.join(map(repr, SAMPLINGS))}, got {sampling!r}")
    return sampling


def mass_offset(sampling):
    """The ``mass_offset`` of :func:`rcforest._score.score_point` for a forest of ``sampling``.

    Parameters
    ----------
    sampling : {"reservoir", "sagemaker"}

    Returns
    -------
    float
        1 (trees scaled by ``log2(M + 1)``) or 0 (by ``log2(M)``).
    """
    return SAGEMAKER_MASS_OFFSET if sampling == "sagemaker" else AWS_MASS_OFFSET


def block_size(num_points, num_trees, sample_size):
    """Points per tree of SageMaker's consecutive layout, or None when the points overflow the forest.

    Parameters
    ----------
    num_points, num_trees, sample_size : int

    Returns
    -------
    int or None
        ``num_points // num_trees`` when ``num_points <= num_trees *
        sample_size`` (tree ``t`` then holds points ``t * k`` to ``t * k +
        k - 1``); None when each tree samples ``sample_size`` points instead.

    Raises
    ------
    ValueError
        If there are fewer than two points per tree: a tree of one point,
        scaled by ``log2(1) = 0``, would score every point 0.
    """
    if num_points > num_trees * sample_size:
        return None
    if num_points < 2 * num_trees:
        raise ValueError(
            f"sampling='sagemaker' gives each of the {num_trees} trees {num_points} // {num_trees} = "
            f"{num_points // num_trees} consecutive points, and a tree needs at least 2; pass at least "
            f"{2 * num_trees} rows, fewer trees, or sampling='reservoir'"
        )
    return num_points // num_trees
