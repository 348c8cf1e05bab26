"""The stamp says 'NOT official' for the offline copy whatever type the flag arrives in."""
import json

import numpy as np
import pandas as pd

from paper_repro.provenance import stamp, stamp_line


def test_stamp_from_a_dataframe_stays_not_official_through_json():
    df = pd.DataFrame([dict(dataset="cifar10", dataset_official=False, dataset_fingerprint="ab", seed=0)])
    s = stamp("cpu", {k: df[k].iloc[0] for k in ("dataset", "dataset_official", "dataset_fingerprint")},
              df["seed"].iloc[0], "cpu:2threads")
    assert s["dataset_official"] is False and isinstance(s["seed"], int)
    back = json.loads(json.dumps(s))
    assert "NOT official" in stamp_line(back)
    assert "NOT official" in stamp_line(dict(s, dataset_official="False"))  # an old record written with str()
    assert "NOT official" in stamp_line(dict(s, dataset_official=np.bool_(False)))
    assert "(official" in stamp_line(dict(s, dataset_official=True))
