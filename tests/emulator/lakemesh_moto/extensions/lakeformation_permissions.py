"""Lake Formation data cells filters, and grants that read back the way Lake Formation stores them.

moto 5.2.5 stores GrantPermissions/RevokePermissions calls as given and compares resources as
whole dicts; it has no data cells filters (ListDataCellsFilter always answers an empty list);
ListPermissions cannot filter by a column-level or filter resource. The daemon's plan/apply
reads grants back and compares them with its policy, so what it reads must be what Lake
Formation would answer. This extension follows the AWS Lake Formation API reference:

- CreateDataCellsFilter / GetDataCellsFilter / ListDataCellsFilter / UpdateDataCellsFilter /
  DeleteDataCellsFilter (`TableData`: TableCatalogId, DatabaseName, TableName, Name, RowFilter
  with FilterExpression or AllRowsWildcard, ColumnNames or ColumnWildcard.ExcludedColumnNames,
  VersionId). The table must exist in the Glue catalog (EntityNotFoundException); a filter name
  is unique per table (AlreadyExistsException); a filter that does not exist is
  EntityNotFoundException; a RowFilter with both or neither of FilterExpression and
  AllRowsWildcard, both ColumnNames and ColumnWildcard, or a column the table does not have is
  InvalidInputException. ListDataCellsFilter filters by `Table` and pages with
  MaxResults/NextToken. Deleting a filter drops the grants on it.
- GrantPermissions / RevokePermissions / BatchGrantPermissions / BatchRevokePermissions on
  Catalog, Database, Table (also TableWildcard), TableWithColumns, DataLocation and
  DataCellsFilter resources. The resource's catalog id defaults to the caller's account and
  is reported back. Grants on one principal and resource merge. As Lake Formation reports them:
  SELECT on a Table is stored as TableWithColumns with ColumnWildcard {} (the other
  permissions stay on the Table), `ALL` on a table reads back as its explicit permissions
  (ALTER, DELETE, DESCRIBE, DROP, INSERT and SELECT), column lists come back sorted (not in the
  order granted), and revoking SELECT on some columns of a ColumnNames grant removes just those
  columns. TableWithColumns takes SELECT only (InvalidInputException otherwise); the database,
  table or filter must exist (EntityNotFoundException); a DataLocation must lie in a registered
  location (InvalidInputException). Unknown permission names are InvalidInputException.
  moto's BatchGrantPermissions read `PermissionsWithGrantOptions`, a key the API does not have
  (it is `PermissionsWithGrantOption`), so grant options were lost; the batch calls here report
  per-entry failures as `Failures` [{RequestEntry, Error{ErrorCode, ErrorMessage}}].
- ListPermissions filters by Principal (which needs a Resource, as in moto and AWS), by
  ResourceType, and by Resource: Catalog, Database (grants on the database), Table or
  TableWithColumns (grants on the table and on its columns), DataCellsFilter, DataLocation; it
  pages with MaxResults/NextToken.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.lakeformation import models, responses, urls
from moto.lakeformation.exceptions import AlreadyExists, InvalidInput

from lakemesh_moto import add_action, add_backend_method, add_url_path, extension

TABLE_PERMISSIONS = ["ALTER", "DELETE", "DESCRIBE", "DROP", "INSERT", "SELECT"]
DATABASE_PERMISSIONS = ["ALTER", "CREATE_TABLE", "DESCRIBE", "DROP"]
KNOWN_PERMISSIONS = {
    "ALL", "SELECT", "ALTER", "DROP", "DELETE", "INSERT", "DESCRIBE", "CREATE_DATABASE",
    "CREATE_TABLE", "DATA_LOCATION_ACCESS", "CREATE_LF_TAG", "ASSOCIATE",
    "GRANT_WITH_LF_TAG_EXPRESSION", "CREATE_LF_TAG_EXPRESSION", "CREATE_CATALOG",
    "SUPER_USER",
}


class EntityNotFound(JsonRESTError):
    def __init__(self, message: str) -> None:
        super().__init__("EntityNotFoundException", message)


# ---- state -------------------------------------------------------------------------------


def _filters(backend: Any) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    if not hasattr(backend, "_lm_filters"):
        backend._lm_filters = {}
    return backend._lm_filters


def _grants(backend: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """catalog id -> canonical key -> {Principal, Resource, Permissions:set, Grant:set}."""
    if not hasattr(backend, "_lm_grants"):
        backend._lm_grants = {}
    return backend._lm_grants


def _glue(backend: Any) -> Any:
    from moto.glue.models import glue_backends

    return glue_backends[backend.account_id][backend.region_name]


def _glue_table(backend: Any, database: str, table: str) -> Any:
    glue = _glue(backend)
    db = glue.databases.get(database)
    if db is None:
        raise EntityNotFound(f"Database {database} not found.")
    t = db.tables.get(table)
    if t is None:
        raise EntityNotFound(f"Table {table} not found.")
    return t


def _table_columns(table: Any) -> set[str]:
    version = table.get_version(str(table._current_version))
    sd = version.get("StorageDescriptor") or {}
    cols = {c["Name"] for c in sd.get("Columns") or []}
    cols |= {c["Name"] for c in version.get("PartitionKeys") or []}
    return cols


# ---- data cells filters --------------------------------------------------------------------


def _check_table_data(backend: Any, data: Any) -> tuple[tuple[str, str, str, str], dict[str, Any]]:
    if not isinstance(data, dict):
        raise InvalidInput("TableData is required.")
    for key in ("TableCatalogId", "DatabaseName", "TableName", "Name"):
        v = data.get(key)
        if not isinstance(v, str) or not 1 <= len(v) <= 255:
            raise InvalidInput(f"TableData.{key} is required (1 to 255 characters).")
    row = data.get("RowFilter")
    if not isinstance(row, dict):
        raise InvalidInput("TableData.RowFilter is required: a FilterExpression or AllRowsWildcard.")
    has_expr = "FilterExpression" in row
    has_all = "AllRowsWildcard" in row
    if has_expr == has_all:
        raise InvalidInput("RowFilter must have exactly one of FilterExpression and AllRowsWildcard.")
    if has_expr and (not isinstance(row["FilterExpression"], str) or not row["FilterExpression"].strip()):
        raise InvalidInput("RowFilter.FilterExpression must not be empty.")
    if has_expr and len(row["FilterExpression"]) > 2048:
        raise InvalidInput("RowFilter.FilterExpression is longer than 2048 characters.")
    has_names = "ColumnNames" in data
    has_wild = "ColumnWildcard" in data
    if has_names and has_wild:
        raise InvalidInput("Only one of ColumnNames and ColumnWildcard may be given.")
    if not has_names and not has_wild:
        raise InvalidInput("One of ColumnNames and ColumnWildcard is required.")
    if data["TableCatalogId"] != backend.account_id:
        raise EntityNotFound(f"Catalog {data['TableCatalogId']} not found.")
    table = _glue_table(backend, data["DatabaseName"], data["TableName"])
    columns = _table_columns(table)
    named = list(data.get("ColumnNames") or []) + list((data.get("ColumnWildcard") or {}).get("ExcludedColumnNames") or [])
    unknown = sorted(set(named) - columns)
    if unknown:
        raise InvalidInput(f"Columns {unknown} are not in table {data['DatabaseName']}.{data['TableName']}.")
    if has_names and not data["ColumnNames"]:
        raise InvalidInput("ColumnNames must not be empty.")
    key = (data["TableCatalogId"], data["DatabaseName"], data["TableName"], data["Name"])
    stored = {k: copy.deepcopy(data[k]) for k in (
        "TableCatalogId", "DatabaseName", "TableName", "Name", "RowFilter", "ColumnNames", "ColumnWildcard"
    ) if k in data}
    return key, stored


def create_data_cells_filter(self: Any, data: Any) -> None:
    key, stored = _check_table_data(self, data)
    filters = _filters(self)
    if key in filters:
        raise AlreadyExists(f"A data cells filter named {key[3]} already exists on table {key[1]}.{key[2]}.")
    stored["VersionId"] = "1"
    filters[key] = stored


def update_data_cells_filter(self: Any, data: Any) -> None:
    key, stored = _check_table_data(self, data)
    filters = _filters(self)
    if key not in filters:
        raise EntityNotFound(f"Data cells filter {key[3]} on table {key[1]}.{key[2]} not found.")
    current = filters[key]
    if data.get("VersionId") not in (None, current["VersionId"]):
        raise JsonRESTError("ConcurrentModificationException",
                            f"Data cells filter {key[3]} was changed since version {data['VersionId']}.")
    stored["VersionId"] = str(int(current["VersionId"]) + 1)
    filters[key] = stored


def _filter_key(params: dict[str, Any]) -> tuple[str, str, str, str]:
    for k in ("TableCatalogId", "DatabaseName", "TableName", "Name"):
        if not params.get(k):
            raise InvalidInput(f"{k} is required.")
    return (params["TableCatalogId"], params["DatabaseName"], params["TableName"], params["Name"])


def get_data_cells_filter(self: Any, key: tuple[str, str, str, str]) -> dict[str, Any]:
    found = _filters(self).get(key)
    if found is None:
        raise EntityNotFound(f"Data cells filter {key[3]} on table {key[1]}.{key[2]} not found.")
    return copy.deepcopy(found)


def delete_data_cells_filter(self: Any, key: tuple[str, str, str, str]) -> None:
    if _filters(self).pop(key, None) is None:
        raise EntityNotFound(f"Data cells filter {key[3]} on table {key[1]}.{key[2]} not found.")
    for catalog in _grants(self).values():
        for gk in [gk for gk, g in catalog.items() if g["Resource"].get("DataCellsFilter") == {
            "TableCatalogId": key[0], "DatabaseName": key[1], "TableName": key[2], "Name": key[3]}]:
            del catalog[gk]


def _page(items: list[Any], params: dict[str, Any], default: int = 100) -> tuple[list[Any], str | None]:
    start = int(params.get("NextToken") or 0)
    size = int(params.get("MaxResults") or default)
    if size < 1:
        raise InvalidInput("MaxResults must be at least 1.")
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)


def list_data_cells_filter_lm(self: Any, table: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    for key in sorted(_filters(self)):
        f = _filters(self)[key]
        if table:
            if table.get("CatalogId", self.account_id) != key[0] or table.get("DatabaseName") != key[1]:
                continue
            if "Name" in table and table["Name"] != key[2]:
                continue
        out.append(copy.deepcopy(f))
    return out


def _create_response(self: Any) -> str:
    self.lakeformation_backend.create_data_cells_filter(self._get_param("TableData"))
    return "{}"


def _update_response(self: Any) -> str:
    self.lakeformation_backend.update_data_cells_filter(self._get_param("TableData"))
    return "{}"


def _params(self: Any) -> dict[str, Any]:
    return json.loads(self.body) if self.body else {}


def _get_response(self: Any) -> str:
    f = self.lakeformation_backend.get_data_cells_filter(_filter_key(_params(self)))
    return json.dumps({"DataCellsFilter": f})


def _delete_response(self: Any) -> str:
    self.lakeformation_backend.delete_data_cells_filter(_filter_key(_params(self)))
    return "{}"


def _list_response(self: Any) -> str:
    params = _params(self)
    items = self.lakeformation_backend.list_data_cells_filter_lm(params.get("Table"))
    page, token = _page(items, params)
    out: dict[str, Any] = {"DataCellsFilters": page}
    if token:
        out["NextToken"] = token
    return json.dumps(out)


# ---- permissions ---------------------------------------------------------------------------


def _canonical(backend: Any, resource: Any, permissions: list[str], grant: list[str],
               check: bool) -> list[tuple[dict[str, Any], set[str], set[str]]]:
    """Splits a request into (canonical resource, permissions, grant options) as stored."""
    if not isinstance(resource, dict) or len(resource) != 1:
        raise InvalidInput("Resource must have exactly one of Catalog, Database, Table, TableWithColumns, "
                           "DataLocation, DataCellsFilter, LFTag, LFTagPolicy.")
    perms, grants = set(permissions or []), set(grant or [])
    unknown = sorted((perms | grants) - KNOWN_PERMISSIONS)
    if unknown:
        raise InvalidInput(f"Unknown permissions {unknown}.")
    kind, body = next(iter(resource.items()))
    body = copy.deepcopy(body or {})
    account = backend.account_id
    if kind == "Catalog":
        return [({"Catalog": {}}, perms, grants)]
    if kind == "Database":
        body.setdefault("CatalogId", account)
        if check:
            if body.get("Name") not in _glue(backend).databases:
                raise EntityNotFound(f"Database {body.get('Name')} not found.")
        if "ALL" in perms:
            perms = (perms - {"ALL"}) | set(DATABASE_PERMISSIONS)
        if "ALL" in grants:
            grants = (grants - {"ALL"}) | set(DATABASE_PERMISSIONS)
        return [({"Database": {"CatalogId": body["CatalogId"], "Name": body.get("Name")}}, perms, grants)]
    if kind == "DataLocation":
        body.setdefault("CatalogId", account)
        arn = body.get("ResourceArn", "")
        if check and not any(arn == r or arn.startswith(r.rstrip("/") + "/") for r in backend.resources):
            raise InvalidInput(f"{arn} is not a registered location.")
        return [({"DataLocation": {"CatalogId": body["CatalogId"], "ResourceArn": arn}}, perms, grants)]
    if kind == "DataCellsFilter":
        key = _filter_key(body)
        if check and key not in _filters(backend):
            raise EntityNotFound(f"Data cells filter {key[3]} on table {key[1]}.{key[2]} not found.")
        return [({"DataCellsFilter": {"TableCatalogId": key[0], "DatabaseName": key[1], "TableName": key[2],
                                      "Name": key[3]}}, perms, grants)]
    if kind in ("Table", "TableWithColumns"):
        body.setdefault("CatalogId", account)
        db = body.get("DatabaseName")
        if kind == "Table" and "TableWildcard" in body:
            if check and db not in _glue(backend).databases:
                raise EntityNotFound(f"Database {db} not found.")
            table_key = {"CatalogId": body["CatalogId"], "DatabaseName": db, "TableWildcard": {}}
        else:
            name = body.get("Name")
            if check:
                _glue_table(backend, db, name)
            table_key = {"CatalogId": body["CatalogId"], "DatabaseName": db, "Name": name}
        if kind == "TableWithColumns":
            if perms - {"SELECT"} or grants - {"SELECT"}:
                raise InvalidInput("TableWithColumns takes SELECT only.")
            if "ColumnNames" in body and "ColumnWildcard" in body:
                raise InvalidInput("Only one of ColumnNames and ColumnWildcard may be given.")
            cols = dict(table_key)
            if "ColumnNames" in body:
                if not body["ColumnNames"]:
                    raise InvalidInput("ColumnNames must not be empty.")
                cols["ColumnNames"] = sorted(set(body["ColumnNames"]))
            else:
                excluded = sorted(set((body.get("ColumnWildcard") or {}).get("ExcludedColumnNames") or []))
                cols["ColumnWildcard"] = {"ExcludedColumnNames": excluded} if excluded else {}
            return [({"TableWithColumns": cols}, perms, grants)]
        if "ALL" in perms:
            perms = (perms - {"ALL"}) | set(TABLE_PERMISSIONS)
        if "ALL" in grants:
            grants = (grants - {"ALL"}) | set(TABLE_PERMISSIONS)
        out = []
        rest_p, rest_g = perms - {"SELECT"}, grants - {"SELECT"}
        if rest_p or rest_g:
            out.append(({"Table": table_key}, rest_p, rest_g))
        if "SELECT" in perms or "SELECT" in grants:
            if "TableWildcard" in table_key:
                out.append(({"Table": table_key}, perms & {"SELECT"}, grants & {"SELECT"}))
            else:
                wild = dict(table_key, ColumnWildcard={})
                out.append(({"TableWithColumns": wild}, perms & {"SELECT"}, grants & {"SELECT"}))
        return out
    raise InvalidInput(f"Resource type {kind} is not supported by this emulator.")


def _principal_id(principal: Any) -> str:
    if not isinstance(principal, dict) or not principal.get("DataLakePrincipalIdentifier"):
        raise InvalidInput("Principal.DataLakePrincipalIdentifier is required.")
    return principal["DataLakePrincipalIdentifier"]


def _gkey(principal: str, resource: dict[str, Any]) -> str:
    return json.dumps([principal, resource], sort_keys=True)


def lm_grant(self: Any, catalog_id: str, principal: Any, resource: Any, permissions: list[str],
             grant: list[str]) -> None:
    who = _principal_id(principal)
    if not permissions and not grant:
        raise InvalidInput("Permissions must not be empty.")
    store = _grants(self).setdefault(catalog_id, {})
    for res, perms, grants in _canonical(self, resource, permissions, grant, check=True):
        entry = store.setdefault(_gkey(who, res), {
            "Principal": {"DataLakePrincipalIdentifier": who}, "Resource": res,
            "Permissions": set(), "Grant": set()})
        entry["Permissions"] |= perms
        entry["Grant"] |= grants


def lm_revoke(self: Any, catalog_id: str, principal: Any, resource: Any, permissions: list[str],
              grant: list[str]) -> None:
    who = _principal_id(principal)
    store = _grants(self).setdefault(catalog_id, {})
    for res, perms, grants in _canonical(self, resource, permissions, grant, check=False):
        twc = res.get("TableWithColumns")
        if twc is not None and "ColumnNames" in twc and "SELECT" in perms:
            # Column grants are per column: revoke the named columns from every ColumnNames
            # grant of this principal on the table.
            for key, entry in list(store.items()):
                other = entry["Resource"].get("TableWithColumns")
                if entry["Principal"]["DataLakePrincipalIdentifier"] != who or other is None:
                    continue
                if "ColumnNames" not in other or any(
                        other.get(k) != twc.get(k) for k in ("CatalogId", "DatabaseName", "Name")):
                    continue
                left = [c for c in other["ColumnNames"] if c not in twc["ColumnNames"]]
                del store[key]
                if left:
                    kept_resource = {"TableWithColumns": dict(other, ColumnNames=left)}
                    store[_gkey(who, kept_resource)] = dict(entry, Resource=kept_resource)
            continue
        entry = store.get(_gkey(who, res))
        if entry is None:
            continue
        entry["Permissions"] -= perms
        entry["Grant"] -= grants | (perms & entry["Grant"])
        if not entry["Permissions"] and not entry["Grant"]:
            del store[_gkey(who, res)]


def _matches(resource: dict[str, Any], query: dict[str, Any], account: str) -> bool:
    kind, body = next(iter(query.items()))
    body = body or {}
    if kind == "Catalog":
        return "Catalog" in resource
    if kind == "Database":
        got = resource.get("Database")
        return got is not None and got["Name"] == body.get("Name") and got["CatalogId"] == body.get("CatalogId", account)
    if kind in ("Table", "TableWithColumns"):
        got = resource.get("Table") or resource.get("TableWithColumns")
        if got is None or got["DatabaseName"] != body.get("DatabaseName") or got["CatalogId"] != body.get("CatalogId", account):
            return False
        if "TableWildcard" in body:
            return "TableWildcard" in got
        return got.get("Name") == body.get("Name")
    if kind == "DataCellsFilter":
        got = resource.get("DataCellsFilter")
        return got is not None and all(got.get(k) == body.get(k) for k in ("TableCatalogId", "DatabaseName", "TableName", "Name"))
    if kind == "DataLocation":
        got = resource.get("DataLocation")
        return got is not None and got["ResourceArn"] == body.get("ResourceArn")
    return False


RESOURCE_TYPES = {
    "CATALOG": ("Catalog",),
    "DATABASE": ("Database",),
    "TABLE": ("Table", "TableWithColumns"),
    "DATA_LOCATION": ("DataLocation",),
}


def lm_list(self: Any, catalog_id: str, principal: Any, resource: Any, resource_type: str | None) -> list[dict[str, Any]]:
    store = _grants(self).get(catalog_id, {})
    if resource_type is not None and resource_type not in RESOURCE_TYPES and resource_type not in (
            "LF_TAG", "LF_TAG_POLICY", "LF_TAG_POLICY_DATABASE", "LF_TAG_POLICY_TABLE", "LF_NAMED_TAG_EXPRESSION"):
        raise InvalidInput(f"ResourceType {resource_type} is not valid.")
    if resource is not None and (not isinstance(resource, dict) or len(resource) != 1):
        raise InvalidInput("Resource must have exactly one field.")
    who = _principal_id(principal) if principal is not None else None
    out = []
    for key in sorted(store):
        entry = store[key]
        if who is not None and entry["Principal"]["DataLakePrincipalIdentifier"] != who:
            continue
        if resource_type is not None and not any(k in entry["Resource"] for k in RESOURCE_TYPES.get(resource_type, ())):
            continue
        if resource is not None and not _matches(entry["Resource"], resource, self.account_id):
            continue
        out.append({
            "Principal": dict(entry["Principal"]),
            "Resource": copy.deepcopy(entry["Resource"]),
            "Permissions": sorted(entry["Permissions"]),
            "PermissionsWithGrantOption": sorted(entry["Grant"]),
        })
    return out


def _grant_response(self: Any) -> str:
    catalog_id = self._get_param("CatalogId") or self.current_account
    self.lakeformation_backend.lm_grant(catalog_id, self._get_param("Principal"), self._get_param("Resource"),
                                        self._get_param("Permissions") or [],
                                        self._get_param("PermissionsWithGrantOption") or [])
    return "{}"


def _revoke_response(self: Any) -> str:
    catalog_id = self._get_param("CatalogId") or self.current_account
    self.lakeformation_backend.lm_revoke(catalog_id, self._get_param("Principal"), self._get_param("Resource"),
                                         self._get_param("Permissions") or [],
                                         self._get_param("PermissionsWithGrantOption") or [])
    return "{}"


def _batch(self: Any, method: str) -> str:
    catalog_id = self._get_param("CatalogId") or self.current_account
    entries = self._get_param("Entries") or []
    failures = []
    for entry in entries:
        try:
            getattr(self.lakeformation_backend, method)(
                catalog_id, entry.get("Principal"), entry.get("Resource"), entry.get("Permissions") or [],
                entry.get("PermissionsWithGrantOption") or [])
        except JsonRESTError as e:
            failures.append({"RequestEntry": entry, "Error": {"ErrorCode": e.error_type, "ErrorMessage": e.message}})
    return json.dumps({"Failures": failures})


def _batch_grant_response(self: Any) -> str:
    return _batch(self, "lm_grant")


def _batch_revoke_response(self: Any) -> str:
    return _batch(self, "lm_revoke")


def _list_permissions_response(self: Any) -> str:
    catalog_id = self._get_param("CatalogId") or self.current_account
    principal = self._get_param("Principal")
    resource = self._get_param("Resource")
    if principal is not None and resource is None:
        raise InvalidInput("Resource is mandatory if Principal is set in the input.")
    items = self.lakeformation_backend.lm_list(catalog_id, principal, resource, self._get_param("ResourceType"))
    page, token = _page(items, _params(self))
    out: dict[str, Any] = {"PrincipalResourcePermissions": page}
    if token:
        out["NextToken"] = token
    return json.dumps(out)


@extension("lakeformation-permissions", service="lakeformation",
           summary="data cells filters (Create/Get/List/Update/DeleteDataCellsFilter) and grants stored and "
                   "listed as Lake Formation reports them, on tables, columns, locations and filters")
def install() -> None:
    backend = models.LakeFormationBackend
    response = responses.LakeFormationResponse
    for name, func in [
        ("create_data_cells_filter", create_data_cells_filter),
        ("update_data_cells_filter", update_data_cells_filter),
        ("get_data_cells_filter", get_data_cells_filter),
        ("delete_data_cells_filter", delete_data_cells_filter),
        ("list_data_cells_filter_lm", list_data_cells_filter_lm),
        ("lm_grant", lm_grant),
        ("lm_revoke", lm_revoke),
        ("lm_list", lm_list),
    ]:
        add_backend_method(backend, name, func)
    for action, func in [
        ("CreateDataCellsFilter", _create_response),
        ("GetDataCellsFilter", _get_response),
        ("UpdateDataCellsFilter", _update_response),
        ("DeleteDataCellsFilter", _delete_response),
    ]:
        add_url_path(urls, "{0}/" + action + "$", urls.response.dispatch)
        add_action(response, action, func)
    add_action(response, "ListDataCellsFilter", _list_response, replace=True,
               reason="moto 5.2.5 always answers an empty list")
    add_action(response, "GrantPermissions", _grant_response, replace=True,
               reason="store grants as Lake Formation reports them (SELECT as columns, ALL expanded, sorted "
                      "columns) and check that the resource exists")
    add_action(response, "RevokePermissions", _revoke_response, replace=True,
               reason="revoke from the stored form, column by column")
    add_action(response, "BatchGrantPermissions", _batch_grant_response, replace=True,
               reason="moto reads PermissionsWithGrantOptions (not an API key) and reports no failures")
    add_action(response, "BatchRevokePermissions", _batch_revoke_response, replace=True,
               reason="as BatchGrantPermissions")
    add_action(response, "ListPermissions", _list_permissions_response, replace=True,
               reason="moto cannot filter by TableWithColumns or DataCellsFilter and does not page")
