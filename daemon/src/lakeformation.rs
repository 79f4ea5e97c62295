//! Lake Formation adapter: data lake settings, registered locations, permissions (listed,
//! granted and revoked in batches) and data cells filters, in the SDK's resource types.
//! Translating the policy's normal form to and from them is `govern`'s.

use aws_sdk_lakeformation::Client;
use aws_sdk_lakeformation::types::{
    BatchPermissionsRequestEntry, DataCellsFilter, DataLakePrincipal, LfTagPair, Permission,
    Resource, TableResource, TableWithColumnsResource,
};

use crate::aws_error::AwsError;

/// The prefix a permission held with grant option is listed under (`GRANTABLE:SELECT`): the
/// policy never gives grant options, so the diff revokes them like any extra permission.
pub const GRANTABLE: &str = "GRANTABLE:";

/// Listed permissions as a request's `Permissions` and `PermissionsWithGrantOption` (the
/// latter `None` when empty).
fn split_grantable(perms: &[String]) -> (Vec<Permission>, Option<Vec<Permission>>) {
    let mut plain = Vec::new();
    let mut grantable = Vec::new();
    for p in perms {
        match p.strip_prefix(GRANTABLE) {
            Some(g) => grantable.push(Permission::from(g)),
            None => plain.push(Permission::from(p.as_str())),
        }
    }
    (plain, (!grantable.is_empty()).then_some(grantable))
}

const SERVICE: &str = "Lake Formation";
/// Entries per BatchGrantPermissions/BatchRevokePermissions call.
pub const BATCH: usize = 20;

/// One listed permission: principal, resource, permissions.
pub type Listed = (String, Resource, Vec<String>);

/// A failed entry of a batch call.
#[derive(Debug, Clone)]
pub struct BatchFailure {
    /// Index of the entry in the request.
    pub index: usize,
    /// Error code.
    pub code: String,
    /// Error message.
    pub message: String,
}

/// Lake Formation.
#[derive(Debug, Clone)]
pub struct LakeFormation {
    client: Client,
}

fn principal(id: &str) -> DataLakePrincipal {
    DataLakePrincipal::builder()
        .data_lake_principal_identifier(id)
        .build()
}

impl LakeFormation {
    /// Wraps a client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Counts of the data lake's CreateDatabaseDefaultPermissions and
    /// CreateTableDefaultPermissions.
    pub async fn default_permissions(&self) -> Result<(usize, usize), AwsError> {
        let out = self
            .client
            .get_data_lake_settings()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "GetDataLakeSettings", "catalog", e))?;
        Ok(out.data_lake_settings().map_or((0, 0), |s| {
            (
                s.create_database_default_permissions().len(),
                s.create_table_default_permissions().len(),
            )
        }))
    }

    /// The role a location is registered with, or `None` when it is not registered.
    pub async fn registered_role(&self, arn: &str) -> Result<Option<String>, AwsError> {
        match self
            .client
            .describe_resource()
            .resource_arn(arn)
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.resource_info()
                    .and_then(|r| r.role_arn())
                    .unwrap_or_default()
                    .to_owned(),
            )),
            Err(e) => {
                let e = AwsError::from_sdk(SERVICE, "DescribeResource", arn, e);
                if e.is("EntityNotFoundException") {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Registers a location with a custom role (not the service-linked role). `Ok(false)` when
    /// it was registered already.
    pub async fn register(&self, arn: &str, role: &str) -> Result<bool, AwsError> {
        match self
            .client
            .register_resource()
            .resource_arn(arn)
            .role_arn(role)
            .use_service_linked_role(false)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = AwsError::from_sdk(SERVICE, "RegisterResource", arn, e);
                if e.is("AlreadyExistsException") {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Every permission on `resource` (all pages).
    pub async fn list(&self, resource: &Resource, what: &str) -> Result<Vec<Listed>, AwsError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_permissions()
                .resource(resource.clone())
                .max_results(100)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "ListPermissions", what, e))?;
            for p in page.principal_resource_permissions() {
                let (Some(who), Some(res)) = (
                    p.principal()
                        .and_then(|p| p.data_lake_principal_identifier()),
                    p.resource(),
                ) else {
                    continue;
                };
                out.push((
                    who.to_owned(),
                    res.clone(),
                    p.permissions()
                        .iter()
                        .map(|x| x.as_str().to_owned())
                        .chain(
                            p.permissions_with_grant_option()
                                .iter()
                                .map(|x| format!("{GRANTABLE}{}", x.as_str())),
                        )
                        .collect(),
                ));
            }
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// Grants permissions (single call; merges with what the principal holds).
    pub async fn grant(
        &self,
        who: &str,
        resource: Resource,
        permissions: &[&str],
        what: &str,
    ) -> Result<(), AwsError> {
        self.client
            .grant_permissions()
            .principal(principal(who))
            .resource(resource)
            .set_permissions(Some(
                permissions.iter().map(|p| Permission::from(*p)).collect(),
            ))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "GrantPermissions", what, e))?;
        Ok(())
    }

    /// Revokes permissions (single call).
    pub async fn revoke(
        &self,
        who: &str,
        resource: Resource,
        permissions: &[String],
        what: &str,
    ) -> Result<(), AwsError> {
        let (plain, grantable) = split_grantable(permissions);
        self.client
            .revoke_permissions()
            .principal(principal(who))
            .resource(resource)
            .set_permissions(Some(plain))
            .set_permissions_with_grant_option(grantable)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "RevokePermissions", what, e))?;
        Ok(())
    }

    /// One BatchGrantPermissions (`revoke` false) or BatchRevokePermissions call of at most
    /// [`BATCH`] entries; the entries that failed.
    pub async fn batch(
        &self,
        revoke: bool,
        entries: &[(String, Resource, Vec<String>)],
    ) -> Result<Vec<BatchFailure>, AwsError> {
        let operation = if revoke {
            "BatchRevokePermissions"
        } else {
            "BatchGrantPermissions"
        };
        let mut req = Vec::new();
        for (i, (who, resource, perms)) in entries.iter().enumerate() {
            let (plain, grantable) = split_grantable(perms);
            req.push(
                BatchPermissionsRequestEntry::builder()
                    .id(i.to_string())
                    .principal(principal(who))
                    .resource(resource.clone())
                    .set_permissions(Some(plain))
                    .set_permissions_with_grant_option(grantable)
                    .build()
                    .map_err(|e| {
                        AwsError::invalid_answer(
                            SERVICE,
                            operation,
                            who,
                            format!("request not built: {e}"),
                        )
                    })?,
            );
        }
        let failures = if revoke {
            self.client
                .batch_revoke_permissions()
                .set_entries(Some(req))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, operation, "batch", e))?
                .failures()
                .to_vec()
        } else {
            self.client
                .batch_grant_permissions()
                .set_entries(Some(req))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, operation, "batch", e))?
                .failures()
                .to_vec()
        };
        Ok(failures
            .iter()
            .map(|f| BatchFailure {
                index: f
                    .request_entry()
                    .and_then(|e| e.id().parse().ok())
                    .unwrap_or(usize::MAX),
                code: f
                    .error()
                    .and_then(|e| e.error_code())
                    .unwrap_or_default()
                    .to_owned(),
                message: f
                    .error()
                    .and_then(|e| e.error_message())
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect())
    }

    /// The data cells filters of a table.
    pub async fn filters(
        &self,
        catalog: &str,
        database: &str,
        table: &str,
    ) -> Result<Vec<DataCellsFilter>, AwsError> {
        let what = format!("{database}.{table}");
        let t = TableResource::builder()
            .catalog_id(catalog)
            .database_name(database)
            .name(table)
            .build()
            .map_err(|e| {
                AwsError::invalid_answer(SERVICE, "ListDataCellsFilter", &what, e.to_string())
            })?;
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_data_cells_filter()
                .table(t.clone())
                .max_results(100)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "ListDataCellsFilter", &what, e))?;
            out.extend(page.data_cells_filters().iter().cloned());
            token = page.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// Creates a filter; `Ok(false)` when one of that name exists on the table.
    pub async fn create_filter(&self, filter: DataCellsFilter) -> Result<bool, AwsError> {
        let what = format!(
            "{}.{} {}",
            filter.database_name(),
            filter.table_name(),
            filter.name()
        );
        match self
            .client
            .create_data_cells_filter()
            .table_data(filter)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = AwsError::from_sdk(SERVICE, "CreateDataCellsFilter", what, e);
                if e.is("AlreadyExistsException") {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Replaces a filter's rows and columns.
    pub async fn update_filter(&self, filter: DataCellsFilter) -> Result<(), AwsError> {
        let what = format!(
            "{}.{} {}",
            filter.database_name(),
            filter.table_name(),
            filter.name()
        );
        self.client
            .update_data_cells_filter()
            .table_data(filter)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "UpdateDataCellsFilter", what, e))?;
        Ok(())
    }

    /// Deletes a filter (one already gone is fine).
    pub async fn delete_filter(
        &self,
        catalog: &str,
        database: &str,
        table: &str,
        name: &str,
    ) -> Result<(), AwsError> {
        let what = format!("{database}.{table} {name}");
        match self
            .client
            .delete_data_cells_filter()
            .table_catalog_id(catalog)
            .database_name(database)
            .table_name(table)
            .name(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from_sdk(SERVICE, "DeleteDataCellsFilter", what, e);
                if e.is("EntityNotFoundException") {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Makes sure LF-tag `key` exists with at least `values`.
    pub async fn ensure_tag(&self, key: &str, values: &[&str]) -> Result<(), AwsError> {
        let have: Vec<String> = match self.client.get_lf_tag().tag_key(key).send().await {
            Ok(out) => out.tag_values().to_vec(),
            Err(e) => {
                let e = AwsError::from_sdk(SERVICE, "GetLFTag", key, e);
                if !e.is("EntityNotFoundException") {
                    return Err(e);
                }
                Vec::new()
            }
        };
        if have.is_empty() {
            self.client
                .create_lf_tag()
                .tag_key(key)
                .set_tag_values(Some(values.iter().map(|v| (*v).to_owned()).collect()))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "CreateLFTag", key, e))?;
            return Ok(());
        }
        let missing: Vec<String> = values
            .iter()
            .filter(|v| !have.iter().any(|h| h == *v))
            .map(|v| (*v).to_owned())
            .collect();
        if !missing.is_empty() {
            self.client
                .update_lf_tag()
                .tag_key(key)
                .set_tag_values_to_add(Some(missing))
                .send()
                .await
                .map_err(|e| AwsError::from_sdk(SERVICE, "UpdateLFTag", key, e))?;
        }
        Ok(())
    }

    /// Puts LF-tag `key = value` on columns of a table.
    pub async fn tag_columns(
        &self,
        database: &str,
        table: &str,
        columns: &[String],
        key: &str,
        value: &str,
    ) -> Result<(), AwsError> {
        let what = format!("{database}.{table} {columns:?}");
        let bad = |e: aws_sdk_lakeformation::error::BuildError| {
            AwsError::invalid_answer(
                SERVICE,
                "AddLFTagsToResource",
                &what,
                format!("request not built: {e}"),
            )
        };
        let resource = Resource::builder()
            .table_with_columns(
                TableWithColumnsResource::builder()
                    .database_name(database)
                    .name(table)
                    .set_column_names(Some(columns.to_vec()))
                    .build()
                    .map_err(bad)?,
            )
            .build();
        let tag = LfTagPair::builder()
            .tag_key(key)
            .tag_values(value)
            .build()
            .map_err(bad)?;
        let out = self
            .client
            .add_lf_tags_to_resource()
            .resource(resource)
            .lf_tags(tag)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(SERVICE, "AddLFTagsToResource", &what, e))?;
        if let Some(f) = out.failures().first() {
            return Err(AwsError::invalid_answer(
                SERVICE,
                "AddLFTagsToResource",
                &what,
                format!(
                    "{}: {}",
                    f.error().and_then(|e| e.error_code()).unwrap_or_default(),
                    f.error()
                        .and_then(|e| e.error_message())
                        .unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }
}
