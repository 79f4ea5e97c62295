"""Tests of the glue-crawler-runs extension, through boto3 as a client would call it.

Run by scripts/test with the emulator venv's Python. One emulator per test class (state-manager
transitions are global to an emulator, so the class that changes them has its own).
"""

from __future__ import annotations

import datetime
import decimal
import io
import itertools
import json
import time
import unittest
import urllib.request

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from test_emulator import Emulator

_names = itertools.count()
CONFIG = {
    "Version": 1.0,
    "CrawlerOutput": {"Partitions": {"AddOrUpdateBehavior": "InheritFromTable"}, "Tables": {"TableThreshold": 1}},
    "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas", "TableLevelConfiguration": 3},
}


def parquet(**columns) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table(columns), buf)
    return buf.getvalue()


def stays() -> bytes:
    return parquet(
        stay_id=pa.array([1, 2], pa.int64()),
        los=pa.array([3, 4], pa.int32()),
        patient_id=pa.array(["a", "b"], pa.string()),
        cost=pa.array([decimal.Decimal("1.50"), None], pa.decimal128(12, 2)),
        ratio=pa.array([0.5, 1.5], pa.float64()),
        admitted=pa.array([datetime.date(2026, 1, 2), None], pa.date32()),
        seen_at=pa.array([datetime.datetime(2026, 1, 2, 3, 4, 5), None], pa.timestamp("ms")),
        urgent=pa.array([True, False], pa.bool_()),
    )


class CrawlerCase(unittest.TestCase):
    transition: dict | None = None

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator("--port", "0", "--quiet")
        if cls.emu.url is None:
            cls.emu.stop()
            raise RuntimeError(f"emulator not ready: {cls.emu.stderr[-20:]}")
        cls.glue = cls.emu.client("glue")
        cls.s3 = cls.emu.client("s3")
        if cls.transition is not None:
            body = json.dumps({"model_name": "glue::crawl", "transition": cls.transition}).encode()
            req = urllib.request.Request(f"{cls.emu.url}/moto-api/state-manager/set-transition", data=body,
                                         method="POST")
            urllib.request.urlopen(req, timeout=5).read()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def setup_product(self, config=CONFIG, recrawl="CRAWL_NEW_FOLDERS_ONLY"):
        n = next(_names)
        bucket, db, crawler = f"bucket-{n}", f"db{n}", f"crawler-{n}"
        self.s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
        self.glue.create_database(DatabaseInput={"Name": db})
        self.glue.create_crawler(
            Name=crawler, Role="arn:aws:iam::123456789012:role/crawler", DatabaseName=db,
            Targets={"S3Targets": [{"Path": f"s3://{bucket}/products/hospital_stays/"}]},
            SchemaChangePolicy={"UpdateBehavior": "LOG", "DeleteBehavior": "LOG"},
            RecrawlPolicy={"RecrawlBehavior": recrawl},
            LakeFormationConfiguration={"UseLakeFormationCredentials": True},
            Configuration=json.dumps(config))
        return bucket, db, crawler

    def put(self, bucket, key, body):
        self.s3.put_object(Bucket=bucket, Key=key, Body=body)

    def crawl(self, crawler, limit=30.0):
        """Starts a crawl and polls GetCrawler until READY; the states seen, and the crawler."""
        self.glue.start_crawler(Name=crawler)
        seen = []
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            c = self.glue.get_crawler(Name=crawler)["Crawler"]
            if not seen or seen[-1] != c["State"]:
                seen.append(c["State"])
            if c["State"] == "READY":
                return seen, c
            time.sleep(0.05)
        self.fail(f"crawl did not finish: {seen}")


class CrawlTest(CrawlerCase):
    def test_crawl_catalogs_one_partitioned_table_with_parquet_types(self):
        bucket, db, crawler = self.setup_product()
        for ym in ("year=2026/month=01", "year=2026/month=02"):
            self.put(bucket, f"products/hospital_stays/{ym}/part-abc-0.parquet", stays())
        self.put(bucket, "products/_lakemesh/manifests/hospital_stays/abc.json", b"{}")
        seen, c = self.crawl(crawler)
        self.assertEqual(seen, ["RUNNING", "STOPPING", "READY"])
        self.assertEqual(c["LastCrawl"]["Status"], "SUCCEEDED")
        self.assertEqual(c["LakeFormationConfiguration"], {"UseLakeFormationCredentials": True})

        tables = self.glue.get_tables(DatabaseName=db)["TableList"]
        self.assertEqual([t["Name"] for t in tables], ["hospital_stays"])
        t = tables[0]
        sd = t["StorageDescriptor"]
        self.assertEqual([(c["Name"], c["Type"]) for c in sd["Columns"]], [
            ("stay_id", "bigint"), ("los", "int"), ("patient_id", "string"), ("cost", "decimal(12,2)"),
            ("ratio", "double"), ("admitted", "date"), ("seen_at", "timestamp"), ("urgent", "boolean")])
        self.assertEqual(sd["Location"], f"s3://{bucket}/products/hospital_stays/")
        self.assertEqual(sd["SerdeInfo"]["SerializationLibrary"],
                         "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe")
        self.assertEqual(sd["InputFormat"], "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat")
        self.assertEqual(t["PartitionKeys"], [{"Name": "year", "Type": "string"}, {"Name": "month", "Type": "string"}])
        self.assertEqual(t["TableType"], "EXTERNAL_TABLE")
        self.assertEqual(t["Parameters"]["classification"], "parquet")
        parts = self.glue.get_partitions(DatabaseName=db, TableName="hospital_stays")["Partitions"]
        self.assertEqual(sorted(p["Values"] for p in parts), [["2026", "01"], ["2026", "02"]])
        p = [p for p in parts if p["Values"] == ["2026", "02"]][0]
        self.assertEqual(p["StorageDescriptor"]["Location"], f"s3://{bucket}/products/hospital_stays/year=2026/month=02/")
        self.assertEqual(p["StorageDescriptor"]["Columns"], sd["Columns"])

    def test_new_folders_only_adds_partitions_on_the_next_crawl(self):
        bucket, db, crawler = self.setup_product()
        self.put(bucket, "products/hospital_stays/year=2026/month=01/part-a-0.parquet", stays())
        self.crawl(crawler)
        self.put(bucket, "products/hospital_stays/year=2026/month=03/part-b-0.parquet", stays())
        _, c = self.crawl(crawler)
        self.assertEqual(c["LastCrawl"]["Status"], "SUCCEEDED")
        parts = self.glue.get_partitions(DatabaseName=db, TableName="hospital_stays")["Partitions"]
        self.assertEqual(sorted(p["Values"] for p in parts), [["2026", "01"], ["2026", "03"]])
        crawls = self.glue.list_crawls(CrawlerName=crawler)["Crawls"]
        self.assertEqual([c["State"] for c in crawls], ["COMPLETED", "COMPLETED"])

    def test_table_threshold_fails_the_crawl_and_writes_nothing(self):
        bucket, db, crawler = self.setup_product(config=dict(CONFIG, Grouping={
            "TableGroupingPolicy": "CombineCompatibleSchemas", "TableLevelConfiguration": 4}))
        self.put(bucket, "products/hospital_stays/year=2026/a.parquet", stays())
        self.put(bucket, "products/hospital_stays/year=2027/b.parquet", stays())
        _, c = self.crawl(crawler)
        self.assertEqual(c["LastCrawl"]["Status"], "FAILED")
        self.assertIn("Table Threshold value = 1, Tables detected - 2", c["LastCrawl"]["ErrorMessage"])
        self.assertEqual(self.glue.get_tables(DatabaseName=db)["TableList"], [])

    def test_conflicting_schemas_and_missing_database_fail(self):
        bucket, db, crawler = self.setup_product()
        self.put(bucket, "products/hospital_stays/year=2026/a.parquet", parquet(x=pa.array([1], pa.int64())))
        self.put(bucket, "products/hospital_stays/year=2027/b.parquet", parquet(x=pa.array(["1"], pa.string())))
        _, c = self.crawl(crawler)
        self.assertEqual(c["LastCrawl"]["Status"], "FAILED")
        self.assertIn("column x is bigint in one file and string", c["LastCrawl"]["ErrorMessage"])
        self.glue.delete_database(Name=db)
        _, c = self.crawl(crawler)
        self.assertIn(f"Database {db} not found", c["LastCrawl"]["ErrorMessage"])

    def test_exclusions_keep_objects_out_of_the_crawl(self):
        bucket, db, crawler = self.setup_product()
        self.put(bucket, "products/hospital_stays/year=2026/a.parquet", parquet(x=pa.array([1], pa.int64())))
        self.put(bucket, "products/hospital_stays/year=2027/part-bad-0.parquet",
                 parquet(x=pa.array(["1"], pa.string())))
        self.glue.update_crawler(Name=crawler, Targets={"S3Targets": [{
            "Path": f"s3://{bucket}/products/hospital_stays/", "Exclusions": ["**/part-bad-*.parquet"]}]})
        _, c = self.crawl(crawler)
        self.assertEqual(c["LastCrawl"]["Status"], "SUCCEEDED", c["LastCrawl"])
        self.assertEqual(c["Targets"]["S3Targets"][0]["Exclusions"], ["**/part-bad-*.parquet"])
        t = self.glue.get_table(DatabaseName=db, Name="hospital_stays")["Table"]
        self.assertEqual([(x["Name"], x["Type"]) for x in t["StorageDescriptor"]["Columns"]], [("x", "bigint")])
        parts = self.glue.get_partitions(DatabaseName=db, TableName="hospital_stays")["Partitions"]
        self.assertEqual([p["Values"] for p in parts], [["2026"]], "the excluded file's folder is not a partition")

    def test_start_while_running_and_update_crawler(self):
        bucket, db, crawler = self.setup_product()
        self.glue.start_crawler(Name=crawler)
        with self.assertRaises(ClientError) as e:
            self.glue.start_crawler(Name=crawler)
        self.assertEqual(e.exception.response["Error"]["Code"], "CrawlerRunningException")
        with self.assertRaises(ClientError) as e:
            self.glue.update_crawler(Name=crawler, Description="x")
        self.assertEqual(e.exception.response["Error"]["Code"], "CrawlerRunningException")
        while self.glue.get_crawler(Name=crawler)["Crawler"]["State"] != "READY":
            pass
        before = self.glue.get_crawler(Name=crawler)["Crawler"]["Version"]
        self.glue.update_crawler(Name=crawler, Configuration=json.dumps(dict(CONFIG, Version=1.0)),
                                 Targets={"S3Targets": [{"Path": f"s3://{bucket}/products/other/"}]})
        c = self.glue.get_crawler(Name=crawler)["Crawler"]
        self.assertEqual(c["Version"], before + 1)
        self.assertEqual(c["Targets"]["S3Targets"][0]["Path"], f"s3://{bucket}/products/other/")
        with self.assertRaises(ClientError) as e:
            self.glue.update_crawler(Name="absent-crawler", Description="x")
        self.assertEqual(e.exception.response["Error"]["Code"], "EntityNotFoundException")
        with self.assertRaises(ClientError) as e:
            self.glue.update_crawler(Name=crawler, SchemaChangePolicy={"UpdateBehavior": "UPDATE_IN_DATABASE",
                                                                       "DeleteBehavior": "LOG"})
        self.assertEqual(e.exception.response["Error"]["Code"], "InvalidInputException")

    def test_stop_crawler_cancels(self):
        bucket, db, crawler = self.setup_product()
        self.glue.start_crawler(Name=crawler)
        self.glue.stop_crawler(Name=crawler)
        while (c := self.glue.get_crawler(Name=crawler)["Crawler"])["State"] != "READY":
            pass
        self.assertEqual(c["LastCrawl"]["Status"], "CANCELLED")


class TimedCrawlTest(CrawlerCase):
    transition = {"progression": "time", "seconds": 1}

    def test_time_progression_runs_then_stops_then_is_ready(self):
        bucket, db, crawler = self.setup_product()
        self.put(bucket, "products/hospital_stays/year=2026/month=01/part-a-0.parquet", stays())
        t0 = time.monotonic()
        seen, c = self.crawl(crawler)
        self.assertGreaterEqual(time.monotonic() - t0, 2.0)
        self.assertEqual(seen, ["RUNNING", "STOPPING", "READY"])
        self.assertEqual(c["LastCrawl"]["Status"], "SUCCEEDED")
        self.assertEqual([t["Name"] for t in self.glue.get_tables(DatabaseName=db)["TableList"]], ["hospital_stays"])


if __name__ == "__main__":
    unittest.main()
