#!/usr/bin/env python3
"""Prepares the local emulator for `lakemesh-syncd verify` on the sample mesh (README, "Checking
the policy on the sample mesh").

Run with the emulator's Python (it has boto3) while `tests/emulator/run --port 5055` runs, from
the repository root:

    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=eu-west-3 \
      AWS_ENDPOINT_URL=http://127.0.0.1:5055 "$(tests/emulator/run --prepare)/bin/python" \
      examples/mesh/ministry/emulator_setup.py

What it does, and why each part is needed on the emulator:
1. catalogs the two products in Glue as the daemon would after a crawl (tables with the columns
   the agent writes from the contracts in examples/mesh/*/, partition keys year and month);
2. in each policy principal's account (moto switches account on AssumeRole), creates the
   `[verify]` workgroup of examples/mesh/ministry/syncd.toml;
3. queues, per account, the Athena answers Lake Formation would give if it held the policy (the
   granted columns; no row outside the filter), in the order verify probes. The emulator neither
   runs queries nor enforces Lake Formation, so the refusal probes read the ungranted tables and
   fail: that is the point of the demo's last line.
"""

from __future__ import annotations

import json
import os
import tomllib
import urllib.request
from pathlib import Path

import boto3

HERE = Path(__file__).resolve().parent
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:5055").rstrip("/")
REGION = "eu-west-3"
WORKGROUP = "lakemesh-verify"
PARTITION_KEYS = ["year", "month"]

# database -> (table, location, columns as the agent writes them from the product contract)
TABLES = {
    "hospital_activity_chu": (
        "hospital_stays",
        "s3://chu-lyon-datamesh/products/hospital_stays/",
        [("stay_id", "bigint"), ("patient_id", "string"), ("birth_year", "int"), ("sex", "string"),
         ("admission_date", "date"), ("discharge_date", "date"), ("department_code", "string"),
         ("region_code", "string"), ("diagnosis_icd10", "string"), ("length_of_stay", "int"),
         ("total_cost", "decimal(12,2)")],
    ),
    "insurance_claims_mutuelle": (
        "claims",
        "s3://mutuelle-sud-datamesh/products/claims/",
        [("claim_id", "string"), ("member_id", "string"), ("provider_finess", "string"),
         ("region_code", "string"), ("department_code", "string"), ("service_date", "date"),
         ("act_code", "string"), ("amount_billed", "decimal(10,2)"),
         ("amount_reimbursed", "decimal(10,2)"), ("status", "string")],
    ),
}
DOMAINS = {"hospital_activity_chu": "hospital_activity", "insurance_claims_mutuelle": "insurance_claims"}


def catalog() -> None:
    glue = boto3.client("glue")
    for db, (table, location, columns) in TABLES.items():
        try:
            glue.create_database(DatabaseInput={"Name": db})
        except glue.exceptions.AlreadyExistsException:
            pass
        try:
            glue.create_table(DatabaseName=db, TableInput={
                "Name": table,
                "TableType": "EXTERNAL_TABLE",
                "PartitionKeys": [{"Name": k, "Type": "string"} for k in PARTITION_KEYS],
                "StorageDescriptor": {
                    "Location": location,
                    "Columns": [{"Name": n, "Type": t} for n, t in columns],
                    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
                },
            })
        except glue.exceptions.AlreadyExistsException:
            pass


def answer(columns: list[str], rows: list[list[str]]) -> dict:
    """An Athena result as moto queues it: the header row first, as Athena answers."""
    data = [{"Data": [{"VarCharValue": v} for v in row]} for row in [columns, *rows]]
    return {"rows": data, "column_info": [{"Name": c, "Label": c, "Type": "varchar"} for c in columns]}


def main() -> None:
    catalog()
    policy = tomllib.loads((HERE / "policy.toml").read_text())
    sts = boto3.client("sts")
    principals = sorted({g["principal"] for g in policy["grant"]})
    for principal in principals:
        creds = sts.assume_role(RoleArn=principal, RoleSessionName="demo-setup")["Credentials"]
        athena = boto3.client("athena", aws_access_key_id=creds["AccessKeyId"],
                              aws_secret_access_key=creds["SecretAccessKey"],
                              aws_session_token=creds["SessionToken"])
        if not athena.get_work_group(WorkGroup=WORKGROUP).get("WorkGroup"):
            athena.create_work_group(Name=WORKGROUP)
        results, ungranted = [], []
        for db in sorted(TABLES):
            grants = [g for g in policy["grant"]
                      if g["principal"] == principal and g["tables"].get("domain") == DOMAINS[db]]
            if not grants:
                ungranted.append(db)
                continue
            every = [n for n, _ in TABLES[db][2]] + PARTITION_KEYS
            cols = grants[0].get("columns", {})
            visible = ([c for c in every if c in cols["include"]] if "include" in cols
                       else [c for c in every if c not in cols.get("exclude", [])])
            results.append(answer(visible, []))           # columns probe
            if any("rows" in g for g in grants):
                results.append(answer(["_col0"], [["0"]]))  # rows probe: none outside the filter
        # The refusal probe takes an empty answer: on the emulator the query "succeeds".
        account = principal.split(":")[4]
        body = json.dumps({"account_id": account, "region": REGION, "results": results}).encode()
        req = urllib.request.Request(f"{ENDPOINT}/moto-api/static/athena/query-results", data=body,
                                     method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req).read()
        print(f"{principal}: workgroup {WORKGROUP}, {len(results)} answers queued, "
              f"{len(ungranted)} ungranted table(s)")


if __name__ == "__main__":
    main()
