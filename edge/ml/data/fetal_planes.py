"""FETAL_PLANES_DB (Burgos-Artizzu et al. 2020): 12,400 images, 1,792 patients, 6 plane classes.

``root/FETAL_PLANES_DB_data.csv`` is `;`-separated with the header
``Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train `` (the last name may carry a
trailing space; Train is 1/0) and images are ``root/Images/<Image_name>.png``. Group = patient: a
split must never put one patient's images on both sides::

    >>> samples = load_fetal_planes("FETAL_PLANES_DB/")       # doctest: +SKIP
    >>> samples[0].label, samples[0].group  # doctest: +SKIP
    ('Other', 'patient1')
"""
from __future__ import annotations

import csv
from pathlib import Path

from edge.ml.data.records import Sample
from edge.core.errors import FileFormatError, MissingFileError, require_file

CSV_NAME = "FETAL_PLANES_DB_data.csv"
REQUIRED = ("Image_name", "Patient_num", "Plane")


def load_fetal_planes(root) -> list[Sample]:
    """One Sample per CSV row; label = Plane; extra carries brain plane, operator, machine, train flag."""
    root = Path(root)
    table = require_file(root / CSV_NAME, "FETAL_PLANES_DB table")
    with open(table, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=";")
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise FileFormatError(f"{table}: header lacks {', '.join(missing)}; expected "
                                  f"Image_name;Patient_num;Plane;Brain_plane;Operator;US_Machine;Train")
        rows = [dict(zip(header, (v.strip() for v in row))) for row in reader if any(v.strip() for v in row)]
    samples, absent = [], []
    for row in rows:
        path = root / "Images" / f"{row['Image_name']}.png"
        if not path.exists():
            absent.append(path.name)
            continue
        samples.append(Sample(path, f"patient{row['Patient_num']}", label=row["Plane"],
                              extra={"brain_plane": row.get("Brain_plane"), "operator": row.get("Operator"),
                                     "machine": row.get("US_Machine"), "train": row.get("Train") == "1"}))
    if absent:
        raise MissingFileError(f"{len(absent)} images listed in {table.name} are missing from {root}/Images "
                               f"(first: {absent[0]}); restore them or fix the table")
    if not samples:
        raise MissingFileError(f"{table} lists no images; expected one row per image")
    return samples
