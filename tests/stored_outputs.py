"""What SageMaker's built-in Random Cut Forest returned in public notebooks: the fixtures of the score-scale tests.

``data/sagemaker_outputs/stored_outputs.json`` names each notebook (repository, path, commit) and holds
the figures read from its stored outputs; the clickstream data is stored beside it as published.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["FOLDER", "STORED", "clickstream"]

FOLDER = Path(__file__).parent / "data" / "sagemaker_outputs"
STORED = json.loads((FOLDER / "stored_outputs.json").read_text())


def clickstream():
    """The clickstream notebook's frame and its 3 features (user, click, residual = click - user).

    Returns
    -------
    frame : pandas.DataFrame
        ``timestamp``, ``page``, ``user``, ``click`` and ``residual`` per 10 minutes.
    train, test : ndarray of float64, shape (1152, 3) and (144, 3)
        The notebook's split: the first 8 days, then 07-15.
    """
    frame = pd.read_csv(FOLDER / "clickstream_clicks_10T.csv", parse_dates=["timestamp"])
    frame["residual"] = frame["click"] - frame["user"]
    features = frame[["user", "click", "residual"]].to_numpy(np.float64)
    rows = STORED["clickstream"]["train_rows"]
    return frame, features[:rows], features[rows:]
