"""Tests of the lakeformation-permissions extension, through boto3 as a client would call it.

Run by scripts/test with the emulator venv's Python. One emulator per test class, on a free
loopback port; each test works on its own database and table.
"""

from __future__ import annotations

import itertools
import unittest

from botocore.exceptions import ClientError

from test_emulator import Emulator

ACCOUNT = "123456789012"
_names = itertools.count()


def code(e: ClientError) -> str:
    return e.response["Error"]["Code"]


class LakeFormationTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator("--port", "0", "--quiet")
        if cls.emu.url is None:
            cls.emu.stop()
            raise RuntimeError(f"emulator not ready: {cls.emu.stderr[-20:]}")
        cls.lf = cls.emu.client("lakeformation")
        cls.glue = cls.emu.client("glue")

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()

    def table(self) -> tuple[str, str]:
        db = f"db{next(_names)}"
        self.glue.create_database(DatabaseInput={"Name": db})
        self.glue.create_table(DatabaseName=db, TableInput={
            "Name": "stays",
            "StorageDescriptor": {"Columns": [{"Name": "patient_id", "Type": "string"},
                                              {"Name": "region_code", "Type": "string"},
                                              {"Name": "cost", "Type": "decimal(12,2)"}],
                                  "Location": "s3://b/products/stays/"},
            "PartitionKeys": [{"Name": "year", "Type": "string"}],
        })
        return db, "stays"

    def filter_data(self, db: str, name: str = "f1", **kw):
        data = {"TableCatalogId": ACCOUNT, "DatabaseName": db, "TableName": "stays", "Name": name,
                "RowFilter": {"FilterExpression": "region_code = '76'"},
                "ColumnWildcard": {"ExcludedColumnNames": ["patient_id"]}}
        data.update(kw)
        return data

    def key(self, db: str, name: str = "f1"):
        return {"TableCatalogId": ACCOUNT, "DatabaseName": db, "TableName": "stays", "Name": name}

    def principal(self, name: str = "analyst"):
        return {"DataLakePrincipalIdentifier": f"arn:aws:iam::{ACCOUNT}:role/{name}"}

    def listed(self, **kw):
        return self.lf.list_permissions(**kw)["PrincipalResourcePermissions"]

    # -- data cells filters ------------------------------------------------------------------

    def test_filter_lifecycle(self):
        db, _ = self.table()
        self.lf.create_data_cells_filter(TableData=self.filter_data(db))
        got = self.lf.get_data_cells_filter(**self.key(db))["DataCellsFilter"]
        self.assertEqual(got["RowFilter"], {"FilterExpression": "region_code = '76'"})
        self.assertEqual(got["ColumnWildcard"], {"ExcludedColumnNames": ["patient_id"]})
        self.assertEqual(got["VersionId"], "1")
        listed = self.lf.list_data_cells_filter(Table={"CatalogId": ACCOUNT, "DatabaseName": db, "Name": "stays"})
        self.assertEqual([f["Name"] for f in listed["DataCellsFilters"]], ["f1"])

        self.lf.update_data_cells_filter(TableData=self.filter_data(
            db, RowFilter={"FilterExpression": "region_code = '11'"}, ColumnWildcard={}))
        got = self.lf.get_data_cells_filter(**self.key(db))["DataCellsFilter"]
        self.assertEqual(got["RowFilter"]["FilterExpression"], "region_code = '11'")
        self.assertEqual(got["ColumnWildcard"], {})
        self.assertEqual(got["VersionId"], "2")

        self.lf.delete_data_cells_filter(**self.key(db))
        with self.assertRaises(ClientError) as e:
            self.lf.get_data_cells_filter(**self.key(db))
        self.assertEqual(code(e.exception), "EntityNotFoundException")

    def test_filter_errors_have_the_documented_codes(self):
        db, _ = self.table()
        self.lf.create_data_cells_filter(TableData=self.filter_data(db))
        cases = [
            ("AlreadyExistsException", self.filter_data(db)),
            ("EntityNotFoundException", dict(self.filter_data(db, name="f2"), TableName="nope")),
            ("InvalidInputException", self.filter_data(db, name="f3", RowFilter={
                "FilterExpression": "x = 1", "AllRowsWildcard": {}})),
            ("InvalidInputException", self.filter_data(db, name="f4", RowFilter={})),
            ("InvalidInputException", self.filter_data(db, name="f5", ColumnNames=["cost"])),
            ("InvalidInputException", self.filter_data(db, name="f6", ColumnWildcard={"ExcludedColumnNames": ["nope"]})),
        ]
        for want, data in cases:
            with self.subTest(data=data), self.assertRaises(ClientError) as e:
                self.lf.create_data_cells_filter(TableData=data)
            self.assertEqual(code(e.exception), want)
        for call in (self.lf.update_data_cells_filter,):
            with self.assertRaises(ClientError) as e:
                call(TableData=self.filter_data(db, name="absent"))
            self.assertEqual(code(e.exception), "EntityNotFoundException")
        with self.assertRaises(ClientError) as e:
            self.lf.delete_data_cells_filter(**self.key(db, "absent"))
        self.assertEqual(code(e.exception), "EntityNotFoundException")

    def test_list_filters_pages_and_filters_by_table(self):
        db, _ = self.table()
        other, _ = self.table()
        for n in range(3):
            self.lf.create_data_cells_filter(TableData=self.filter_data(db, name=f"p{n}"))
        self.lf.create_data_cells_filter(TableData=self.filter_data(other, name="elsewhere"))
        table = {"CatalogId": ACCOUNT, "DatabaseName": db, "Name": "stays"}
        first = self.lf.list_data_cells_filter(Table=table, MaxResults=2)
        self.assertEqual(len(first["DataCellsFilters"]), 2)
        rest = self.lf.list_data_cells_filter(Table=table, MaxResults=2, NextToken=first["NextToken"])
        self.assertNotIn("NextToken", rest)
        names = [f["Name"] for f in first["DataCellsFilters"] + rest["DataCellsFilters"]]
        self.assertEqual(names, ["p0", "p1", "p2"])

    # -- grants --------------------------------------------------------------------------------

    def test_grant_on_filter_is_listed_and_revoked(self):
        db, _ = self.table()
        self.lf.create_data_cells_filter(TableData=self.filter_data(db))
        resource = {"DataCellsFilter": self.key(db)}
        self.lf.grant_permissions(Principal=self.principal(), Resource=resource, Permissions=["SELECT"])
        got = self.listed(Resource=resource)
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0]["Permissions"], ["SELECT"])
        self.assertEqual(got[0]["Resource"], resource)
        self.lf.revoke_permissions(Principal=self.principal(), Resource=resource, Permissions=["SELECT"])
        self.assertEqual(self.listed(Resource=resource), [])
        with self.assertRaises(ClientError) as e:
            self.lf.grant_permissions(Principal=self.principal(), Resource={"DataCellsFilter": self.key(db, "absent")},
                                      Permissions=["SELECT"])
        self.assertEqual(code(e.exception), "EntityNotFoundException")

    def test_deleting_a_filter_drops_its_grants(self):
        db, _ = self.table()
        self.lf.create_data_cells_filter(TableData=self.filter_data(db))
        resource = {"DataCellsFilter": self.key(db)}
        self.lf.grant_permissions(Principal=self.principal(), Resource=resource, Permissions=["SELECT"])
        self.lf.delete_data_cells_filter(**self.key(db))
        self.assertEqual(self.listed(Resource=resource), [])

    def test_select_on_table_reads_back_as_column_wildcard_and_all_as_explicit(self):
        db, t = self.table()
        table = {"Table": {"DatabaseName": db, "Name": t}}
        self.lf.grant_permissions(Principal=self.principal(), Resource=table, Permissions=["SELECT", "DESCRIBE"])
        got = sorted(self.listed(Resource=table), key=lambda p: list(p["Resource"]))
        self.assertEqual([p["Resource"] for p in got], [
            {"Table": {"CatalogId": ACCOUNT, "DatabaseName": db, "Name": t}},
            {"TableWithColumns": {"CatalogId": ACCOUNT, "DatabaseName": db, "Name": t, "ColumnWildcard": {}}},
        ])
        self.assertEqual([p["Permissions"] for p in got], [["DESCRIBE"], ["SELECT"]])

        self.lf.grant_permissions(Principal=self.principal("admin"), Resource=table, Permissions=["ALL"])
        admin = self.listed(Principal=self.principal("admin"), Resource=table)
        perms = sorted(p for entry in admin for p in entry["Permissions"])
        self.assertEqual(perms, ["ALTER", "DELETE", "DESCRIBE", "DROP", "INSERT", "SELECT"])

        # Revoking SELECT on the table removes the wildcard column grant.
        self.lf.revoke_permissions(Principal=self.principal(), Resource=table, Permissions=["SELECT"])
        left = self.listed(Principal=self.principal(), Resource=table)
        self.assertEqual([p["Permissions"] for p in left], [["DESCRIBE"]])

    def test_column_grants_sort_merge_and_revoke_per_column(self):
        db, t = self.table()
        cols = {"TableWithColumns": {"DatabaseName": db, "Name": t, "ColumnNames": ["region_code", "cost"]}}
        self.lf.grant_permissions(Principal=self.principal(), Resource=cols, Permissions=["SELECT"])
        got = self.listed(Resource={"Table": {"DatabaseName": db, "Name": t}})
        self.assertEqual(got[0]["Resource"]["TableWithColumns"]["ColumnNames"], ["cost", "region_code"])
        self.lf.revoke_permissions(Principal=self.principal(), Permissions=["SELECT"], Resource={
            "TableWithColumns": {"DatabaseName": db, "Name": t, "ColumnNames": ["cost"]}})
        got = self.listed(Resource={"TableWithColumns": {"DatabaseName": db, "Name": t}})
        self.assertEqual(got[0]["Resource"]["TableWithColumns"]["ColumnNames"], ["region_code"])
        with self.assertRaises(ClientError) as e:
            self.lf.grant_permissions(Principal=self.principal(), Resource=cols, Permissions=["DESCRIBE"])
        self.assertEqual(code(e.exception), "InvalidInputException")

    def test_grants_need_existing_resources_and_known_permissions(self):
        db, _ = self.table()
        for resource, want in [
            ({"Table": {"DatabaseName": db, "Name": "nope"}}, "EntityNotFoundException"),
            ({"Database": {"Name": "nope"}}, "EntityNotFoundException"),
            ({"DataLocation": {"ResourceArn": "arn:aws:s3:::unregistered/x"}}, "InvalidInputException"),
        ]:
            with self.subTest(resource=resource), self.assertRaises(ClientError) as e:
                self.lf.grant_permissions(Principal=self.principal(), Resource=resource, Permissions=["DESCRIBE"])
            self.assertEqual(code(e.exception), want)
        with self.assertRaises(ClientError) as e:
            self.lf.grant_permissions(Principal=self.principal(), Resource={"Database": {"Name": db}},
                                      Permissions=["READ_EVERYTHING"])
        self.assertEqual(code(e.exception), "InvalidInputException")

    def test_batch_calls_keep_grant_options_and_report_failures(self):
        db, t = self.table()
        out = self.lf.batch_grant_permissions(Entries=[
            {"Id": "1", "Principal": self.principal(), "Resource": {"Database": {"Name": db}},
             "Permissions": ["CREATE_TABLE", "DESCRIBE"], "PermissionsWithGrantOption": ["DESCRIBE"]},
            {"Id": "2", "Principal": self.principal(), "Resource": {"Table": {"DatabaseName": db, "Name": "nope"}},
             "Permissions": ["SELECT"]},
        ])
        self.assertEqual([(f["RequestEntry"]["Id"], f["Error"]["ErrorCode"]) for f in out["Failures"]],
                         [("2", "EntityNotFoundException")])
        got = self.listed(Resource={"Database": {"Name": db}})
        self.assertEqual(got[0]["Permissions"], ["CREATE_TABLE", "DESCRIBE"])
        self.assertEqual(got[0]["PermissionsWithGrantOption"], ["DESCRIBE"])
        self.lf.batch_revoke_permissions(Entries=[
            {"Id": "1", "Principal": self.principal(), "Resource": {"Database": {"Name": db}},
             "Permissions": ["CREATE_TABLE"]}])
        got = self.listed(Resource={"Database": {"Name": db}})
        self.assertEqual(got[0]["Permissions"], ["DESCRIBE"])

    def test_data_location_grants_in_registered_locations(self):
        arn = f"arn:aws:s3:::lake-{next(_names)}/products"
        self.lf.register_resource(ResourceArn=arn, RoleArn=f"arn:aws:iam::{ACCOUNT}:role/registration")
        resource = {"DataLocation": {"ResourceArn": arn}}
        self.lf.grant_permissions(Principal=self.principal("crawler"), Resource=resource,
                                  Permissions=["DATA_LOCATION_ACCESS"])
        got = self.listed(Resource=resource)
        self.assertEqual(got[0]["Resource"], {"DataLocation": {"CatalogId": ACCOUNT, "ResourceArn": arn}})
        self.assertEqual(self.lf.describe_resource(ResourceArn=arn)["ResourceInfo"]["RoleArn"],
                         f"arn:aws:iam::{ACCOUNT}:role/registration")

    def test_list_permissions_pages(self):
        db, t = self.table()
        for n in range(3):
            self.lf.grant_permissions(Principal=self.principal(f"p{n}"), Resource={"Database": {"Name": db}},
                                      Permissions=["DESCRIBE"])
        first = self.lf.list_permissions(Resource={"Database": {"Name": db}}, MaxResults=2)
        rest = self.lf.list_permissions(Resource={"Database": {"Name": db}}, MaxResults=2,
                                        NextToken=first["NextToken"])
        self.assertEqual(len(first["PrincipalResourcePermissions"]) + len(rest["PrincipalResourcePermissions"]), 3)
        with self.assertRaises(ClientError) as e:
            self.lf.list_permissions(Principal=self.principal())
        self.assertEqual(code(e.exception), "InvalidInputException")


if __name__ == "__main__":
    unittest.main()
