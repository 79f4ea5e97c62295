"""Built-in extensions of the emulator: one module per extension, imported by install_all().

A module registers itself on import and changes moto only inside its install function:

    from moto.lakeformation import responses, urls, models
    from lakemesh_moto import extension, add_action, add_backend_method, add_url_path

    @extension("lakeformation-data-cells-filters", service="lakeformation",
               summary="CreateDataCellsFilter/GetDataCellsFilter/... as in the AWS API reference")
    def install():
        add_backend_method(models.LakeFormationBackend, "create_data_cells_filter", _create)
        add_action(responses.LakeFormationResponse, "CreateDataCellsFilter", _create_response)
        add_url_path(urls, "{0}/CreateDataCellsFilter$", urls.response.dispatch)

Each extension comes with tests in tests/emulator/ that call it through boto3, as a client would:
glue_crawler_runs.py (test_glue_crawler.py), lakeformation_permissions.py (test_lakeformation.py),
s3_headbucket_permission.py (test_emulator.py).
"""
