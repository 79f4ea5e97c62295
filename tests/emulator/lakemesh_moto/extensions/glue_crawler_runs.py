"""Glue crawlers that crawl: a finished run catalogs the Parquet under its S3 targets.

moto 5.2.5 keeps a crawler's state only: a crawl never reads S3 or writes tables, it only
advances (model `glue::crawl`, default progression "manual", one tick) when ListCrawls is
called, so a daemon polling GetCrawler sees RUNNING forever; a finished crawl is reported in
`LastCrawl.Status` as COMPLETED/STOPPED, which are ListCrawls states, not LastCrawl's
(SUCCEEDED | CANCELLED | FAILED); `LastCrawl` names the running crawl instead of the last one
that finished; the crawler's State goes RUNNING -> READY without STOPPING; UpdateCrawler does
not exist; LakeFormationConfiguration is dropped. Following the AWS Glue API reference and
developer guide ("How crawlers work", "Setting crawler configuration options",
"Specifying the maximum number of tables"), this extension:

- runs each crawl through moto's state manager, model `glue::crawl`, with the transitions
  RUNNING -> FINISHING -> COMPLETED (and moto's RUNNING/STOPPING -> STOPPED for StopCrawler);
  GetCrawler and ListCrawls each count as one observation for "manual" progression (so with
  the default a crawl is seen RUNNING, then STOPPING, then READY), and "time" or "immediate"
  progressions set through `POST /moto-api/state-manager/set-transition` work as usual. The
  crawler's State is RUNNING, then STOPPING while the crawl finishes, then READY;
- when a crawl leaves RUNNING, catalogs its S3 targets: every `*.parquet` object under a
  target's path (objects whose key has a folder or file name starting with `_` or `.` are
  skipped, as Glue skips them, and so are keys matching one of the target's `Exclusions` glob
  patterns, relative to its path, `*` also matching `/`) belongs to the table whose root folder is the key's first
  `TableLevelConfiguration` levels (the bucket is level 1; without the setting, the target's
  folder); the table is named after that folder (lowercased, other characters than a-z 0-9 _
  as `_`, with the crawler's TablePrefix); the folders between the table root and the file are
  partitions (`k=v` gives key `k` and value `v`, anything else `partition_N`); columns come
  from the Parquet schema read with pyarrow (int8 tinyint, int16 smallint, int32 int, int64
  bigint, float, double, decimal(p,s), date, timestamp of any unit -> timestamp, string,
  boolean, binary); files whose schemas conflict are an error, compatible ones are combined
  (CombineCompatibleSchemas); more tables than `CrawlerOutput.Tables.TableThreshold` fail the
  crawl and write nothing; the table gets `StorageDescriptor` with the Parquet SerDe
  (`org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe`, Mapred Parquet input and
  output formats), its S3 location (the folder, with a trailing `/`), partition keys as
  `string` columns, TableType EXTERNAL_TABLE and `classification = parquet`; a partition gets
  its folder as location and, with `CrawlerOutput.Partitions.AddOrUpdateBehavior =
  InheritFromTable`, the table's columns. An existing table's columns change only with
  SchemaChangePolicy UpdateBehavior UPDATE_IN_DATABASE (new columns added); with
  `RecrawlPolicy.RecrawlBehavior = CRAWL_NEW_FOLDERS_ONLY` only folders not seen by an earlier
  successful crawl are read. A missing database or bucket, or a threshold overrun, makes the
  crawl FAILED with an ErrorMessage;
- reports `LastCrawl` as the last finished crawl with Status SUCCEEDED, CANCELLED or FAILED
  (and ErrorMessage), `LakeFormationConfiguration` as given;
- adds UpdateCrawler (EntityNotFoundException for an unknown crawler, CrawlerRunningException
  while it runs, Version incremented) and refuses, in CreateCrawler and UpdateCrawler, a
  RecrawlPolicy of CRAWL_NEW_FOLDERS_ONLY with a SchemaChangePolicy other than LOG/LOG
  (InvalidInputException), as Glue does.
"""

from __future__ import annotations

import fnmatch
import io
import json
import re
from typing import Any

from moto.core.utils import utcnow
from moto.glue import models, responses
from moto.glue.exceptions import CrawlerRunningException, EntityNotFoundException, InvalidInputException
from moto.moto_api._internal.managed_state_model import ManagedState

from lakemesh_moto import add_action, add_backend_method, extension

PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"


class CrawlFailed(Exception):
    """The crawl fails with this message and writes nothing."""


def glue_type(t: Any) -> str:
    import pyarrow as pa

    if pa.types.is_int8(t):
        return "tinyint"
    if pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "int"
    if pa.types.is_int64(t) or pa.types.is_uint32(t) or pa.types.is_uint64(t):
        return "bigint"
    if pa.types.is_float32(t):
        return "float"
    if pa.types.is_float64(t):
        return "double"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"array<{glue_type(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{glue_type(f.type)}" for f in t) + ">"
    return "string"


def table_name(folder: str, prefix: str | None) -> str:
    return (prefix or "") + re.sub(r"[^a-z0-9_]", "_", folder.lower())


def _s3_backend(glue: Any) -> Any:
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    return s3_backends[glue.account_id][get_partition(glue.region_name)]


def _objects(glue: Any, path: str) -> list[tuple[str, str, bytes]]:
    """(bucket, key, bytes) of every object under an s3://bucket/prefix path."""
    if not path.startswith("s3://"):
        raise CrawlFailed(f"S3 target {path} is not an s3:// path")
    bucket_name, _, prefix = path[len("s3://"):].partition("/")
    bucket = _s3_backend(glue).buckets.get(bucket_name)
    if bucket is None:
        raise CrawlFailed(f"The specified bucket does not exist: {bucket_name}")
    out = []
    for key, obj in bucket.keys.items():
        if key.startswith(prefix) and not key.endswith("/"):
            out.append((bucket_name, key, obj.value))
    return sorted(out)


def _skipped(key: str) -> bool:
    return any(part.startswith(("_", ".")) for part in key.split("/"))


def run_crawl(crawler: Any) -> None:
    """Catalogs the crawler's targets; raises CrawlFailed."""
    import pyarrow.parquet as pq

    glue = crawler.backend
    db = glue.databases.get(crawler.database_name)
    if db is None:
        raise CrawlFailed(f"Database {crawler.database_name} not found")
    config = json.loads(crawler.configuration) if crawler.configuration else {}
    level = (config.get("Grouping") or {}).get("TableLevelConfiguration")
    threshold = ((config.get("CrawlerOutput") or {}).get("Tables") or {}).get("TableThreshold")
    inherit = ((config.get("CrawlerOutput") or {}).get("Partitions") or {}).get(
        "AddOrUpdateBehavior") == "InheritFromTable"
    new_only = (crawler.recrawl_policy or {}).get("RecrawlBehavior") == "CRAWL_NEW_FOLDERS_ONLY"
    update = (crawler.schema_change_policy or {}).get("UpdateBehavior", "UPDATE_IN_DATABASE")
    seen: set[str] = crawler.__dict__.setdefault("_lm_seen_folders", set())

    tables: dict[tuple[str, str], list[tuple[list[str], str, bytes]]] = {}
    for target in (crawler.targets or {}).get("S3Targets") or []:
        path = target["Path"]
        target_prefix = path[len("s3://"):].partition("/")[2]
        exclusions = target.get("Exclusions") or []
        for bucket, key, data in _objects(glue, path):
            relative = key[len(target_prefix):]
            if _skipped(relative) or not key.endswith(".parquet"):
                continue
            if any(fnmatch.fnmatchcase(relative, pattern) for pattern in exclusions):
                continue
            parts = key.split("/")
            if level:
                depth = int(level) - 1
                if len(parts) - 1 < depth:
                    continue
                root = parts[:depth]
            else:
                root = target_prefix.strip("/").split("/") if target_prefix.strip("/") else []
            if not root:
                root_key = (bucket, "")
            else:
                root_key = (bucket, "/".join(root))
            tables.setdefault(root_key, []).append((parts[len(root):-1], key, data))
    if threshold is not None and len(tables) > int(threshold):
        raise CrawlFailed(f"Table Threshold value = {threshold}, Tables detected - {len(tables)}")

    plans = []
    for (bucket, root), files in sorted(tables.items()):
        name = table_name(root.rsplit("/", 1)[-1] if root else bucket, crawler.table_prefix)
        location = f"s3://{bucket}/{root}/" if root else f"s3://{bucket}/"
        depths = {len(dirs) for dirs, _, _ in files}
        if len(depths) != 1:
            raise CrawlFailed(f"{location}: files at different partition depths {sorted(depths)}")
        columns: dict[str, str] = {}
        for dirs, key, data in files:
            for field in pq.read_schema(io.BytesIO(data)):
                t = glue_type(field.type)
                if columns.setdefault(field.name.lower(), t) != t:
                    raise CrawlFailed(
                        f"{location}: column {field.name} is {columns[field.name.lower()]} in one file and {t} in s3://{bucket}/{key}")
        keys = []
        for i, d in enumerate(files[0][0]):
            keys.append(d.split("=", 1)[0].lower() if "=" in d else f"partition_{i}")
        partitions = {}
        for dirs, _, _ in files:
            folder = location + "".join(d + "/" for d in dirs)
            if new_only and folder in seen:
                continue
            values = [d.split("=", 1)[1] if "=" in d else d for d in dirs]
            partitions[folder] = values
        plans.append((name, location, columns, keys, partitions))

    for name, location, columns, keys, partitions in plans:
        cols = [{"Name": n, "Type": t} for n, t in columns.items()]
        sd = {
            "Columns": cols,
            "Location": location,
            "InputFormat": PARQUET_INPUT,
            "OutputFormat": PARQUET_OUTPUT,
            "Compressed": False,
            "NumberOfBuckets": -1,
            "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
            "BucketColumns": [],
            "SortColumns": [],
            "Parameters": {"classification": "parquet", "typeOfData": "file"},
            "StoredAsSubDirectories": False,
        }
        existing = db.tables.get(name)
        if existing is None:
            glue.create_table(crawler.database_name, name, {
                "Name": name,
                "StorageDescriptor": sd,
                "PartitionKeys": [{"Name": k, "Type": "string"} for k in keys],
                "TableType": "EXTERNAL_TABLE",
                "Parameters": {"classification": "parquet", "UPDATED_BY_CRAWLER": crawler.name,
                               "CrawlerSchemaSerializerVersion": "1.0", "typeOfData": "file"},
                "Retention": 0,
            })
            table = db.tables[name]
        else:
            table = existing
            current = dict(table.get_version(str(table._current_version)))
            if update == "UPDATE_IN_DATABASE" and not new_only:
                have = {c["Name"] for c in current["StorageDescriptor"]["Columns"]}
                added = [c for c in cols if c["Name"] not in have]
                if added:
                    new_sd = dict(current["StorageDescriptor"], Columns=current["StorageDescriptor"]["Columns"] + added)
                    table.update(dict(current, StorageDescriptor=new_sd))
        table_sd = table.get_version(str(table._current_version))["StorageDescriptor"]
        for folder, values in partitions.items():
            psd = dict(table_sd if inherit else sd, Location=folder)
            if str(values) in table.partitions:
                continue
            table.create_partition({"Values": values, "StorageDescriptor": psd,
                                    "Parameters": {"classification": "parquet"}})
    for _, _, _, _, partitions in plans:
        seen.update(partitions)


class CatalogingCrawl(ManagedState):
    """A crawl of `crawler`; catalogs when it leaves RUNNING (see the module docstring)."""

    def __init__(self, crawler: Any) -> None:
        base = models.FakeCrawl(crawler.name)
        self.__dict__.update({k: v for k, v in base.__dict__.items() if not k.startswith("_")})
        ManagedState.__init__(self, model_name="glue::crawl",
                              transitions=[("RUNNING", "FINISHING"), ("FINISHING", "COMPLETED"),
                                           ("STOPPING", "STOPPED")])
        self.crawler = crawler
        self.outcome: str | None = None  # SUCCEEDED | FAILED | CANCELLED once finished
        self.error_message: str | None = None

    @property
    def status(self) -> str | None:
        before = self._status
        now = ManagedState.status.fget(self)  # type: ignore[attr-defined]
        if before == "RUNNING" and now in ("FINISHING", "COMPLETED") and self.outcome is None:
            try:
                run_crawl(self.crawler)
                self.outcome = "SUCCEEDED"
            except CrawlFailed as e:
                self.outcome = "FAILED"
                self.error_message = str(e)
        if before in ("RUNNING", "STOPPING") and now == "STOPPED" and self.outcome is None:
            self.outcome = "CANCELLED"
        if now in ("COMPLETED", "STOPPED") and self.end_time is None:
            self.end_time = utcnow()
        return now

    @status.setter
    def status(self, value: str) -> None:
        self._status = value

    def as_dict(self) -> dict[str, Any]:
        status = self.status
        state = {"FINISHING": "RUNNING", "STOPPING": "RUNNING"}.get(status, status)
        if status == "COMPLETED" and self.outcome == "FAILED":
            state = "FAILED"
        out: dict[str, Any] = {
            "CrawlId": self.crawl_id,
            "State": state,
            "StartTime": self.start_time,
            "DPUHour": self.dpu_hour,
            "LogGroup": self.log_group,
            "LogStream": self.log_stream,
            "MessagePrefix": self.message_prefix,
        }
        if self.end_time:
            out["EndTime"] = self.end_time
        if self.error_message:
            out["ErrorMessage"] = self.error_message
        return out


def _start_crawler(self: Any) -> None:
    if self.crawls and self.crawls[-1].status in ("RUNNING", "FINISHING", "STOPPING"):
        raise CrawlerRunningException(f"Crawler with name {self.name} has already started")
    self.crawls.append(CatalogingCrawl(self))


def _crawler_status(self: Any) -> str:
    if not self.crawls:
        return "READY"
    status = self.crawls[-1].status
    if status == "RUNNING":
        return "RUNNING"
    if status in ("FINISHING", "STOPPING"):
        return "STOPPING"
    return "READY"


def _crawler_as_dict(self: Any) -> dict[str, Any]:
    data = _ORIGINAL_AS_DICT(self)
    data.pop("LastCrawl", None)
    if getattr(self, "lake_formation_configuration", None):
        data["LakeFormationConfiguration"] = self.lake_formation_configuration
    finished = [c for c in self.crawls if getattr(c, "outcome", None) is not None and c.status in ("COMPLETED", "STOPPED")]
    if finished:
        last = finished[-1]
        data["LastCrawl"] = {
            "Status": last.outcome,
            "LogGroup": last.log_group,
            "LogStream": last.log_stream,
            "MessagePrefix": last.message_prefix,
            "StartTime": last.start_time,
        }
        if last.error_message:
            data["LastCrawl"]["ErrorMessage"] = last.error_message
    if self.crawls and self.crawls[-1].status in ("RUNNING", "FINISHING"):
        data["CrawlElapsedTime"] = int((utcnow() - self.crawls[-1].start_time).total_seconds() * 1000)
    return data


_ORIGINAL_AS_DICT = models.FakeCrawler.as_dict
_ORIGINAL_CREATE = responses.GlueResponse.create_crawler


def _check_policies(recrawl: Any, schema_change: Any) -> None:
    if (recrawl or {}).get("RecrawlBehavior") == "CRAWL_NEW_FOLDERS_ONLY":
        sc = schema_change or {}
        if sc.get("UpdateBehavior", "UPDATE_IN_DATABASE") != "LOG" or sc.get("DeleteBehavior", "DEPRECATE_IN_DATABASE") != "LOG":
            raise InvalidInputException(
                "CreateCrawler",
                "The SchemaChangePolicy for \"Crawl new folders only\" Amazon S3 target can have only LOG "
                "DeleteBehavior value and LOG UpdateBehavior value.")


def _create_crawler(self: Any) -> Any:
    _check_policies(self.parameters.get("RecrawlPolicy"), self.parameters.get("SchemaChangePolicy"))
    result = _ORIGINAL_CREATE(self)
    crawler = self.glue_backend.get_crawler(self.parameters.get("Name"))
    crawler.lake_formation_configuration = self.parameters.get("LakeFormationConfiguration")
    return result


def _get_crawler(self: Any) -> Any:
    from moto.core.responses import ActionResult

    crawler = self.glue_backend.get_crawler(self.parameters.get("Name"))
    out = ActionResult({"Crawler": crawler.as_dict()})
    # One observation of the running crawl, as ListCrawls is in moto (manual progression).
    if crawler.crawls:
        crawler.crawls[-1].advance()
    return out


def update_crawler(self: Any, name: str, params: dict[str, Any]) -> None:
    try:
        crawler = self.crawlers[name]
    except KeyError:
        raise EntityNotFoundException(f"Crawler entry with name {name} does not exist")
    if crawler.status != "READY":
        raise CrawlerRunningException(f"Crawler with name {name} has already started")
    _check_policies(params.get("RecrawlPolicy", crawler.recrawl_policy),
                    params.get("SchemaChangePolicy", crawler.schema_change_policy))
    fields = {
        "Role": "role", "DatabaseName": "database_name", "Description": "description", "Targets": "targets",
        "Classifiers": "classifiers", "TablePrefix": "table_prefix", "SchemaChangePolicy": "schema_change_policy",
        "RecrawlPolicy": "recrawl_policy", "LineageConfiguration": "lineage_configuration",
        "Configuration": "configuration", "CrawlerSecurityConfiguration": "crawler_security_configuration",
        "LakeFormationConfiguration": "lake_formation_configuration", "Schedule": "schedule",
    }
    for api, attr in fields.items():
        if api in params:
            setattr(crawler, attr, params[api])
    crawler.version += 1
    crawler.last_updated = utcnow()


def _update_crawler_response(self: Any) -> Any:
    from moto.core.responses import EmptyResult

    self.glue_backend.update_crawler(self.parameters.get("Name"), self.parameters)
    return EmptyResult()


@extension("glue-crawler-runs", service="glue",
           summary="crawls that catalog the Parquet under their S3 targets (tables, partitions, Parquet types), "
                   "RUNNING -> STOPPING -> READY, LastCrawl SUCCEEDED/FAILED, UpdateCrawler")
def install() -> None:
    crawler = models.FakeCrawler
    add_backend_method(crawler, "start_crawler", _start_crawler, replace=True,
                       reason="a crawl that catalogs its targets when it finishes")
    add_backend_method(crawler, "status", property(_crawler_status), replace=True,
                       reason="STOPPING while the crawl finishes, as Glue reports it")
    add_backend_method(crawler, "as_dict", _crawler_as_dict, replace=True,
                       reason="LastCrawl is the last finished crawl, SUCCEEDED/CANCELLED/FAILED; "
                              "LakeFormationConfiguration kept")
    add_backend_method(models.GlueBackend, "update_crawler", update_crawler)
    add_action(responses.GlueResponse, "CreateCrawler", _create_crawler, replace=True,
               reason="keep LakeFormationConfiguration; refuse CRAWL_NEW_FOLDERS_ONLY without LOG/LOG")
    add_action(responses.GlueResponse, "GetCrawler", _get_crawler, replace=True,
               reason="each GetCrawler is one observation of the crawl for manual progression")
    add_action(responses.GlueResponse, "UpdateCrawler", _update_crawler_response)
