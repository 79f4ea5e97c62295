//! `plan` and `apply` against Lake Formation: changing the policy (a column dropped from a
//! grant, a filter changed, a principal removed) yields the precise diff, `apply` reaches it,
//! and `plan` is empty afterwards; a grant nobody asked for is revoked, even beside others.

use aws_sdk_lakeformation::types::{DataLakePrincipal, Permission, Resource, TableResource};
use lakemesh_shared::testbed::Emulator;
use lakemesh_syncd::commands;
use lakemesh_syncd::policy::{TableRef, filter_name};

use crate::support::{AGENCY, ANALYST, DESIGN_POLICY, World};

async fn plan(w: &World) -> Vec<String> {
    let (settings, policy) = w.load();
    commands::plan(settings, policy, &w.sdk)
        .await
        .expect("plan")
        .iter()
        .map(ToString::to_string)
        .collect()
}

async fn apply(w: &World) -> usize {
    let (settings, policy) = w.load();
    commands::apply(settings, policy, &w.sdk)
        .await
        .expect("apply")
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_changes_give_precise_plans_that_apply_reaches() {
    let e = Emulator::shared().expect("emulator");
    let w = World::new(e, 3).await;
    let a = w.upload("hospital_stays", &[1], 7).await;
    w.send(&a).await;
    assert_eq!(w.run_once().await.done, 1);
    let db = w.database();
    let t = format!("{db}.hospital_stays");
    let table = TableRef {
        database: db.clone(),
        table: "hospital_stays".into(),
    };
    assert_eq!(plan(&w).await, Vec::<String>::new());
    assert_eq!(apply(&w).await, 0);

    // Drop a column from the analyst's grant.
    w.write_policy(&DESIGN_POLICY.replace(
        "exclude = [\"patient_id\"]",
        "exclude = [\"patient_id\", \"total_cost\"]",
    ));
    assert_eq!(
        plan(&w).await,
        vec![
            format!("- revoke SELECT on table {t} (all columns but patient_id) from {ANALYST}"),
            format!(
                "+ grant SELECT on table {t} (all columns but patient_id, total_cost) to {ANALYST}"
            ),
        ]
    );
    assert_eq!(apply(&w).await, 2);
    assert_eq!(plan(&w).await, Vec::<String>::new());

    // Change the agency's filter.
    let policy2 = DESIGN_POLICY
        .replace(
            "exclude = [\"patient_id\"]",
            "exclude = [\"patient_id\", \"total_cost\"]",
        )
        .replace("'76'", "'11'");
    w.write_policy(&policy2);
    let old = filter_name(AGENCY, &table, "region_code = '76'");
    let new = filter_name(AGENCY, &table, "region_code = '11'");
    assert_eq!(
        plan(&w).await,
        vec![
            format!(
                "+ create data cells filter {new} on {t}: rows \"region_code = '11'\", all columns but birth_year, patient_id"
            ),
            format!("- revoke SELECT on data cells filter {old} of {t} from {AGENCY}"),
            format!("+ grant SELECT on data cells filter {new} of {t} to {AGENCY}"),
            format!("- delete data cells filter {old} on {t}"),
        ]
    );
    assert_eq!(apply(&w).await, 4);
    assert_eq!(plan(&w).await, Vec::<String>::new());
    let lf = w.lf();
    let gone = lf
        .get_data_cells_filter()
        .table_catalog_id(lakemesh_shared::testbed::ACCOUNT_ID)
        .database_name(&db)
        .table_name("hospital_stays")
        .name(&old)
        .send()
        .await;
    assert!(gone.is_err(), "the old filter is deleted");

    // Change only the filter's columns: the filter is updated in place.
    w.write_policy(&policy2.replace("\"patient_id\", \"birth_year\"", "\"patient_id\""));
    assert_eq!(
        plan(&w).await,
        vec![format!(
            "~ update data cells filter {new} on {t}: rows \"region_code = '11'\", all columns but patient_id (was rows \"region_code = '11'\", all columns but birth_year, patient_id)"
        )]
    );
    assert_eq!(apply(&w).await, 1);
    assert_eq!(plan(&w).await, Vec::<String>::new());

    // A grant made by hand beside the policy's, on the same table and principal, is revoked.
    lf.grant_permissions()
        .principal(
            DataLakePrincipal::builder()
                .data_lake_principal_identifier(ANALYST)
                .build(),
        )
        .resource(
            Resource::builder()
                .table(
                    TableResource::builder()
                        .database_name(&db)
                        .name("hospital_stays")
                        .build()
                        .expect("t"),
                )
                .build(),
        )
        .permissions(Permission::Drop)
        .permissions(Permission::Select)
        .send()
        .await
        .expect("grant by hand");
    assert_eq!(
        plan(&w).await,
        vec![
            format!("- revoke DROP on table {t} from {ANALYST}"),
            format!("- revoke SELECT on table {t} (all columns) from {ANALYST}"),
        ]
    );
    apply(&w).await;
    assert_eq!(plan(&w).await, Vec::<String>::new());

    // A grant option given by hand (the policy never gives one) is revoked, the permission
    // itself kept when the policy gives it.
    lf.grant_permissions()
        .principal(
            DataLakePrincipal::builder()
                .data_lake_principal_identifier(ANALYST)
                .build(),
        )
        .resource(
            Resource::builder()
                .table(
                    TableResource::builder()
                        .database_name(&db)
                        .name("hospital_stays")
                        .build()
                        .expect("t"),
                )
                .build(),
        )
        .permissions_with_grant_option(Permission::Describe)
        .send()
        .await
        .expect("grant option by hand");
    assert_eq!(
        plan(&w).await,
        vec![format!(
            "- revoke GRANTABLE:DESCRIBE on table {t} from {ANALYST}"
        )]
    );
    apply(&w).await;
    assert_eq!(plan(&w).await, Vec::<String>::new());

    // Remove a principal: all it had goes, and its filter.
    let only_analyst = format!(
        "[[grant]]{}",
        DESIGN_POLICY
            .split("\n[[grant]]")
            .nth(1)
            .expect("first grant")
    );
    w.write_policy(&only_analyst);
    let changes = plan(&w).await;
    assert_eq!(
        changes,
        vec![
            format!(
                "- revoke SELECT on table {t} (all columns but patient_id, total_cost) from {ANALYST}"
            ),
            format!("- revoke SELECT on data cells filter {new} of {t} from {AGENCY}"),
            format!("+ grant SELECT on table {t} (all columns but patient_id) to {ANALYST}"),
            format!("- delete data cells filter {new} on {t}"),
        ]
    );
    apply(&w).await;
    assert_eq!(plan(&w).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_policy_that_does_not_fit_the_table_is_refused_before_anything_is_applied() {
    let e = Emulator::shared().expect("emulator");
    let w = World::new(e, 3).await;
    let a = w.upload("hospital_stays", &[1], 8).await;
    w.send(&a).await;
    assert_eq!(w.run_once().await.done, 1);
    w.write_policy(&DESIGN_POLICY.replace("region_code = '76'", "admission_date IS NULL"));
    let (settings, policy) = w.load();
    let err = commands::apply(settings, policy, &w.sdk)
        .await
        .expect_err("lint refuses")
        .to_string();
    assert!(
        err.contains("grant #2")
            && err.contains(AGENCY)
            && err.contains(&format!("{}.hospital_stays", w.database()))
            && err.contains("date or timestamp"),
        "{err}"
    );
}

#[tokio::test]
async fn protected_columns_get_the_pii_lf_tag() {
    let e = Emulator::shared().expect("emulator");
    let w = World::new(e, 3).await;
    let key = format!("pii_{}", w.domain);
    w.write_policy(&format!("{DESIGN_POLICY}\n[pii_tag]\nkey = \"{key}\"\n"));
    let a = w.upload("hospital_stays", &[1], 40).await;
    w.send(&a).await;
    assert_eq!(w.run_once().await.done, 1);
    let lf = w.lf();
    let tag = lf.get_lf_tag().tag_key(&key).send().await.expect("LF-tag");
    let mut values = tag.tag_values().to_vec();
    values.sort();
    assert_eq!(values, ["hmac", "truncate", "year"]);
    let out = lf
        .get_resource_lf_tags()
        .resource(
            Resource::builder()
                .table_with_columns(
                    aws_sdk_lakeformation::types::TableWithColumnsResource::builder()
                        .database_name(w.database())
                        .name("hospital_stays")
                        .column_names("patient_id")
                        .column_names("birth_year")
                        .column_names("region_code")
                        .build()
                        .expect("resource"),
                )
                .build(),
        )
        .send()
        .await
        .expect("GetResourceLFTags");
    let mut got: Vec<(String, Vec<String>)> = out
        .lf_tags_on_columns()
        .iter()
        .map(|c| {
            (
                c.name().unwrap_or_default().to_owned(),
                c.lf_tags()
                    .iter()
                    .flat_map(|t| t.tag_values().to_vec())
                    .collect(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("birth_year".to_owned(), vec!["year".to_owned()]),
            ("patient_id".to_owned(), vec!["hmac".to_owned()])
        ]
    );
}

/// A service started with one policy, then the policy edited and applied by hand (no
/// SIGHUP): the service's next message must not put back what `apply` revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_service_follows_a_policy_applied_by_hand() {
    let e = Emulator::shared().expect("emulator");
    let w = World::new(e, 3).await;
    let contractor = "arn:aws:iam::123456789012:role/contractor";
    let with_contractor = format!(
        "{DESIGN_POLICY}\n[[grant]]\nprincipal = \"{contractor}\"\ntables = {{ domain = \"{}\" }}\npermissions = [\"SELECT\"]\n",
        w.domain
    );
    w.write_policy(&with_contractor);
    w.send(&w.upload("hospital_stays", &[1], 31).await).await;
    let (settings, started_with) = w.load();
    let r = commands::run(
        settings.clone(),
        started_with.clone(),
        &w.sdk,
        true,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("run");
    assert_eq!(r.done, 1);
    assert!(plan(&w).await.is_empty());

    // The grant is removed from the file and applied, while the service keeps running with
    // the policy it started with.
    w.write_policy(DESIGN_POLICY);
    assert!(plan(&w).await.iter().any(|c| c.contains(contractor)));
    apply(&w).await;
    assert!(plan(&w).await.is_empty());
    w.send(&w.upload("hospital_stays", &[2], 32).await).await;
    let r = commands::run(
        settings,
        started_with,
        &w.sdk,
        true,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("run");
    assert_eq!(r.done, 1);
    assert_eq!(
        plan(&w).await,
        Vec::<String>::new(),
        "the service did not grant the contractor again"
    );
    assert!(
        !crate::support::log_lines(&["changed: reloaded before governing"]).is_empty(),
        "the reload is logged"
    );

    // The file goes missing (a rename half done): nothing is governed rather than the policy
    // the service started with (which still has the contractor).
    let path = w.dir.path().join("policy.toml");
    let away = w.dir.path().join("policy.away");
    std::fs::rename(&path, &away).expect("move the policy away");
    w.send(&w.upload("hospital_stays", &[3], 33).await).await;
    let (settings2, _) = {
        std::fs::copy(&away, &path).expect("copy back for loading");
        let loaded = w.load();
        std::fs::remove_file(&path).expect("and away again");
        loaded
    };
    let r = commands::run(
        settings2,
        started_with_again(&with_contractor.replace("DOMAIN", &w.domain)),
        &w.sdk,
        true,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .expect("run");
    assert_eq!(r.done, 1, "the batch is cataloged");
    assert!(
        !crate::support::log_lines(&["governance skipped until it is back"]).is_empty(),
        "the skip is logged as an error"
    );
    std::fs::rename(&away, &path).expect("policy back");
    assert_eq!(
        plan(&w).await,
        Vec::<String>::new(),
        "the contractor was not granted again"
    );
}

/// The policy the service of the test above started with (with the contractor).
fn started_with_again(text: &str) -> std::sync::Arc<lakemesh_syncd::policy::Policy> {
    std::sync::Arc::new(
        lakemesh_syncd::policy::Policy::from_toml(text, std::path::Path::new("policy.toml"))
            .expect("policy"),
    )
}
