#!/usr/bin/env python3
"""Describe a Hive-partitioned Parquet output as JSON, read by pyarrow (a reader independent of ours).

usage: parquet_dump.py [--rows] [--sort COLS] [--sample N] [--duckdb] DIR
       run it with the test venv:  "$(scripts/pyenv)/bin/python" scripts/parquet_dump.py --rows OUT/product

DIR is one product's folder: DIR/k1=v1/k2=v2/part-*.parquet (any depth, including none).
Prints one JSON object on stdout:

  files           number of .parquet files
  rows            total rows (from the files' footers)
  row_groups      total row groups
  bytes           total size of the .parquet files
  schema          [{"name", "type": str(pyarrow type), "metadata": {k: v}}] of the files
                  (the first file's; every other file must have the same fields and types)
  file_metadata   the first file's key/value metadata, without ARROW:schema
  partition_keys  key names from the folder names, outermost first (the same for every file)
  partitions      number of distinct partition folders
  other_files     paths (relative to DIR) of files that are not .parquet: temp files left behind,
                  markers... (hidden names included)
  rows_sample     the first N records (--sample, default 3) in the order below
  records         with --rows: every record
  duckdb          with --duckdb: {"files", "rows", "schema": [{"name", "type"}]} as DuckDB's
                  read_parquet(hive_partitioning = false) sees them, a second independent reader

Records are JSON objects, file columns first then the partition keys. Files are taken in path order
(digit runs compared as numbers), rows in file order; --sort COL[,COL...] sorts the records instead
(nulls first). Values: integers as numbers, dates "YYYY-MM-DD", timestamps "YYYY-MM-DD HH:MM:SS"
plus ".fff" when there are milliseconds (".ffffff" / ".fffffffff" when there is more; a timestamp
with a time zone is shown in UTC), decimals as strings with the full scale ("12.50"), strings as
they are, binary as hex, NaN/Infinity floats as strings. Partition values are the folder names'
strings with Hive %XX escapes undone, never typed: pyarrow's partition inference is not used,
each file is read on its own with pq.read_table.

Exit status: 0 on success, 2 when DIR is unusable (missing, mixed schemas or partition keys,
a folder that is not key=value, a partition key also stored as a column).
"""
import argparse
import datetime as dt
import decimal
import json
import math
import os
import re
import sys
from urllib.parse import unquote_to_bytes

import pyarrow as pa
import pyarrow.parquet as pq

EPOCH = dt.datetime(1970, 1, 1)
UNIT_PER_SEC = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


class DumpError(Exception):
    pass


def natural_key(path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def hive_unescape(s):
    # Hive escapes '%' and a few other characters as %XX (uppercase hex) and leaves the rest as
    # is: undo the escapes on the UTF-8 bytes, then decode.
    try:
        return unquote_to_bytes(s).decode("utf-8")
    except UnicodeDecodeError as e:
        raise DumpError(f"folder name {s!r} is not UTF-8 once %XX escapes are undone: {e}")


def scan(root):
    """Return ([(relpath, [(key, value), ...])] of parquet files, [other relpaths])."""
    parquet, other = [], []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in files:
            rel = os.path.relpath(os.path.join(d, f), root)
            if f.endswith(".parquet") and not f.startswith((".", "_")):
                parquet.append(rel)
            else:
                other.append(rel)
    parquet.sort(key=natural_key)
    other.sort(key=natural_key)
    out = []
    for rel in parquet:
        parts = []
        for seg in rel.split(os.sep)[:-1]:
            if "=" not in seg:
                raise DumpError(f"{rel}: folder {seg!r} is not key=value")
            k, v = seg.split("=", 1)
            parts.append((hive_unescape(k), hive_unescape(v)))
        out.append((rel, parts))
    return out, other


def decode_kv(meta):
    if not meta:
        return {}
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in meta.items()}


def fmt_timestamp(n, unit):
    per = UNIT_PER_SEC[unit]
    secs, frac = divmod(n, per)
    text = (EPOCH + dt.timedelta(seconds=secs)).strftime("%Y-%m-%d %H:%M:%S")
    if frac:
        digits = {1_000: 3, 1_000_000: 6, 1_000_000_000: 9}[per]
        f = str(frac).rjust(digits, "0")
        if digits > 3 and f[3:].strip("0") == "":
            f = f[:3]
        elif digits > 6 and f[6:].strip("0") == "":
            f = f[:6]
        text += "." + f
    return text


def py_value(v):
    """JSON-able form of a Python value from as_py (nested types, non-timestamp scalars)."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return fmt_timestamp((v - EPOCH) // dt.timedelta(microseconds=1), "us")
    if isinstance(v, (dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    if isinstance(v, dict):
        return {str(k): py_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [py_value(x) for x in v]
    return str(v)


def column_values(col):
    """List of JSON-able values of one ChunkedArray."""
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
        t = t.value_type
    if pa.types.is_timestamp(t):
        # raw integers: as_py cannot hold nanoseconds nor years past 9999
        ints = col.cast(pa.int64()).to_pylist()
        return [None if n is None else fmt_timestamp(n, t.unit) for n in ints]
    if pa.types.is_date(t):
        return [None if d is None else d.isoformat() for d in col.to_pylist()]
    return [py_value(v) for v in col.to_pylist()]


def table_records(table, parts):
    names = table.column_names
    cols = [column_values(table.column(i)) for i in range(table.num_columns)]
    recs = []
    for r in range(table.num_rows):
        rec = {n: c[r] for n, c in zip(names, cols)}
        for k, v in parts:
            rec[k] = v
        recs.append(rec)
    return recs


def field_json(f):
    return {"name": f.name, "type": str(f.type), "metadata": decode_kv(f.metadata)}


def sort_key(cols):
    def key(rec):
        out = []
        for c in cols:
            v = rec.get(c)
            # nulls first; numbers before strings so mixed columns still sort
            out.append((0, 0, 0) if v is None else (1, 0, v) if isinstance(v, (int, float)) else (1, 1, str(v)))
        return out
    return key


def dump_duckdb(root, rels):
    import duckdb

    con = duckdb.connect()
    if not rels:
        return {"files": 0, "rows": 0, "schema": []}
    paths = [os.path.join(root, r) for r in rels]
    src = "read_parquet($files, hive_partitioning = false)"
    rows = con.execute(f"SELECT count(*) FROM {src}", {"files": paths}).fetchone()[0]
    desc = con.execute(f"DESCRIBE SELECT * FROM {src}", {"files": paths}).fetchall()
    return {"files": len(paths), "rows": rows,
            "schema": [{"name": d[0], "type": d[1]} for d in desc]}


def dump(a):
    root = a.dir
    if not os.path.isdir(root):
        raise DumpError(f"{root}: not a directory")
    files, other = scan(root)
    res = {"files": len(files), "rows": 0, "row_groups": 0, "bytes": 0, "schema": [],
           "file_metadata": {}, "partition_keys": [], "partitions": 0, "other_files": other,
           "rows_sample": []}
    schema = None
    keys = None
    records = []
    want_all = a.rows or a.sort
    for rel, parts in files:
        path = os.path.join(root, rel)
        pf = pq.ParquetFile(path)
        md = pf.metadata
        res["rows"] += md.num_rows
        res["row_groups"] += md.num_row_groups
        res["bytes"] += os.path.getsize(path)
        fkeys = [k for k, _ in parts]
        fschema = pf.schema_arrow
        if schema is None:
            schema, keys = fschema, fkeys
            res["schema"] = [field_json(f) for f in schema]
            res["file_metadata"] = {k: v for k, v in decode_kv(md.metadata).items() if k != "ARROW:schema"}
            res["partition_keys"] = keys
        else:
            if fkeys != keys:
                raise DumpError(f"{rel}: partition keys {fkeys} differ from {keys} of {files[0][0]}")
            if not fschema.equals(schema, check_metadata=False):
                raise DumpError(f"{rel}: schema differs from {files[0][0]}:\n{fschema}\n--- vs ---\n{schema}")
        stored = set(fschema.names) & set(fkeys)
        if stored:
            raise DumpError(f"{rel}: partition key(s) {sorted(stored)} also stored as file columns")
        if want_all or len(records) < a.sample:
            table = pq.read_table(path, partitioning=None)
            recs = table_records(table, parts)
            records.extend(recs if want_all else recs[: a.sample - len(records)])
    res["partitions"] = len({os.path.dirname(rel) for rel, _ in files})
    if a.sort:
        records.sort(key=sort_key([c for c in a.sort.split(",") if c]))
    res["rows_sample"] = records[: a.sample]
    if a.rows:
        res["records"] = records
    if a.duckdb:
        res["duckdb"] = dump_duckdb(root, [rel for rel, _ in files])
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="one product's output folder (DIR/k=v/.../*.parquet)")
    ap.add_argument("--rows", action="store_true", help="add every record under \"records\"")
    ap.add_argument("--sort", metavar="COLS", default="", help="sort records by these columns (comma list)")
    ap.add_argument("--sample", type=int, default=3, metavar="N", help="records in rows_sample (default 3)")
    ap.add_argument("--duckdb", action="store_true", help="add DuckDB's count and schema under \"duckdb\"")
    ap.add_argument("--indent", type=int, default=None, help="pretty-print with this indent")
    a = ap.parse_args()
    try:
        res = dump(a)
    except DumpError as e:
        print(f"parquet_dump: {e}", file=sys.stderr)
        sys.exit(2)
    text = json.dumps(res, ensure_ascii=False, allow_nan=False, indent=a.indent)
    sys.stdout.buffer.write(text.encode("utf-8") + b"\n")


if __name__ == "__main__":
    main()
