//! An announcement end to end in crawler mode: database, crawler, crawl, table, registration
//! and exactly the grants, column lists and row filters of the policy; a burst of announcements
//! for one product makes one or two crawls.

use std::collections::BTreeSet;

use aws_sdk_lakeformation::types::{DataCellsFilterResource, Resource, TableResource};
use lakemesh_shared::testbed::{ACCOUNT_ID, Emulator};
use lakemesh_syncd::commands;
use lakemesh_syncd::policy::{TableRef, filter_name};

use crate::support::{AGENCY, ANALYST, CRAWLER_ROLE, REGISTRATION_ROLE, World};

/// (principal, resource kind, detail, permissions) of every grant on a resource.
async fn grants(w: &World, resource: Resource) -> BTreeSet<(String, String, Vec<String>)> {
    let out = w
        .lf()
        .list_permissions()
        .resource(resource)
        .send()
        .await
        .expect("ListPermissions");
    out.principal_resource_permissions()
        .iter()
        .map(|p| {
            let who = p
                .principal()
                .and_then(|p| p.data_lake_principal_identifier())
                .unwrap_or_default()
                .to_owned();
            let r = p.resource().expect("resource");
            let what = if let Some(t) = r.table_with_columns() {
                match t.column_wildcard() {
                    Some(w) => format!("columns all but {:?}", w.excluded_column_names()),
                    None => format!("columns {:?}", t.column_names()),
                }
            } else if let Some(f) = r.data_cells_filter() {
                format!("filter {}", f.name().unwrap_or_default())
            } else if r.table().is_some() {
                "table".into()
            } else if r.database().is_some() {
                "database".into()
            } else if let Some(l) = r.data_location() {
                format!("location {}", l.resource_arn())
            } else {
                format!("{r:?}")
            };
            let mut perms: Vec<String> = p
                .permissions()
                .iter()
                .map(|x| x.as_str().to_owned())
                .collect();
            perms.sort();
            (who, what, perms)
        })
        .collect()
}

fn table_resource(db: &str, table: &str) -> Resource {
    Resource::builder()
        .table(
            TableResource::builder()
                .database_name(db)
                .name(table)
                .build()
                .expect("table"),
        )
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcement_becomes_database_crawler_table_and_exact_grants() {
    let e = Emulator::shared().expect("emulator");
    let w = World::new(e, 3).await;
    let a = w.upload("hospital_stays", &[1, 2], 1).await;
    w.send(&a).await;
    let report = w.run_once().await;
    assert_eq!(
        (report.done, report.failed, report.rejections.len()),
        (1, 0, 0),
        "{report:?}"
    );
    assert_eq!(w.depth(&w.queue_url).await, 0, "the message was deleted");

    let db = w.database();
    let glue = w.glue();
    let database = glue
        .get_database()
        .name(&db)
        .send()
        .await
        .expect("database")
        .database
        .expect("db");
    assert_eq!(
        database.create_table_default_permissions(),
        &[],
        "IAM-only defaults cleared"
    );

    let crawler = glue
        .get_crawler()
        .name(format!("lakemesh-{db}-hospital_stays"))
        .send()
        .await
        .expect("crawler")
        .crawler
        .expect("crawler");
    assert_eq!(crawler.role(), Some(CRAWLER_ROLE));
    assert_eq!(crawler.state().map(|s| s.as_str()), Some("READY"));
    assert_eq!(
        crawler
            .last_crawl()
            .and_then(|l| l.status())
            .map(|s| s.as_str()),
        Some("SUCCEEDED")
    );
    assert_eq!(
        crawler.targets().expect("targets").s3_targets()[0].path(),
        Some(format!("s3://{}/products/hospital_stays/", w.bucket).as_str())
    );
    let config: serde_json::Value =
        serde_json::from_str(crawler.configuration().expect("configuration")).expect("json");
    assert_eq!(
        config["CrawlerOutput"]["Partitions"]["AddOrUpdateBehavior"],
        "InheritFromTable"
    );
    assert_eq!(
        config["Grouping"]["TableGroupingPolicy"],
        "CombineCompatibleSchemas"
    );
    assert_eq!(config["Grouping"]["TableLevelConfiguration"], 3);
    assert_eq!(config["CrawlerOutput"]["Tables"]["TableThreshold"], 1);
    assert_eq!(
        crawler
            .recrawl_policy()
            .and_then(|r| r.recrawl_behavior())
            .map(|b| b.as_str()),
        Some("CRAWL_NEW_FOLDERS_ONLY")
    );
    assert_eq!(
        crawler
            .lake_formation_configuration()
            .and_then(|l| l.use_lake_formation_credentials()),
        Some(true)
    );

    let table = glue
        .get_table()
        .database_name(&db)
        .name("hospital_stays")
        .send()
        .await
        .expect("table")
        .table
        .expect("t");
    let sd = table.storage_descriptor().expect("sd");
    let cols: Vec<(&str, &str)> = sd
        .columns()
        .iter()
        .map(|c| (c.name(), c.r#type().unwrap_or_default()))
        .collect();
    assert_eq!(
        cols,
        [
            ("stay_id", "bigint"),
            ("patient_id", "string"),
            ("birth_year", "int"),
            ("region_code", "string"),
            ("total_cost", "decimal(12,2)"),
            ("admission_date", "date")
        ]
    );
    let keys: Vec<&str> = table.partition_keys().iter().map(|c| c.name()).collect();
    assert_eq!(keys, ["year", "month"]);
    assert_eq!(
        sd.serde_info().and_then(|s| s.serialization_library()),
        Some("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe")
    );
    let parts = glue
        .get_partitions()
        .database_name(&db)
        .table_name("hospital_stays")
        .send()
        .await
        .expect("partitions");
    let mut values: Vec<Vec<String>> = parts
        .partitions()
        .iter()
        .map(|p| p.values().to_vec())
        .collect();
    values.sort();
    assert_eq!(
        values,
        [
            vec!["2026".to_owned(), "01".into()],
            vec!["2026".into(), "02".into()]
        ]
    );

    // Lake Formation: the location registered with the custom role, the crawler's grants.
    let lf = w.lf();
    let location = format!("arn:aws:s3:::{}/products", w.bucket);
    let registered = lf
        .describe_resource()
        .resource_arn(&location)
        .send()
        .await
        .expect("registered");
    assert_eq!(
        registered.resource_info().and_then(|r| r.role_arn()),
        Some(REGISTRATION_ROLE)
    );
    let on_db = grants(
        &w,
        Resource::builder()
            .database(
                aws_sdk_lakeformation::types::DatabaseResource::builder()
                    .name(&db)
                    .build()
                    .expect("db"),
            )
            .build(),
    )
    .await;
    assert_eq!(
        on_db,
        BTreeSet::from([(
            CRAWLER_ROLE.to_owned(),
            "database".to_owned(),
            vec!["ALTER".into(), "CREATE_TABLE".into(), "DESCRIBE".into()]
        )])
    );
    let on_location = grants(
        &w,
        Resource::builder()
            .data_location(
                aws_sdk_lakeformation::types::DataLocationResource::builder()
                    .resource_arn(&location)
                    .build()
                    .expect("loc"),
            )
            .build(),
    )
    .await;
    assert_eq!(
        on_location,
        BTreeSet::from([(
            CRAWLER_ROLE.to_owned(),
            format!("location {location}"),
            vec!["DATA_LOCATION_ACCESS".into()]
        )])
    );

    // Exactly the policy's grants on the table.
    let fname = filter_name(
        AGENCY,
        &TableRef {
            database: db.clone(),
            table: "hospital_stays".into(),
        },
        "region_code = '76'",
    );
    assert_eq!(
        grants(&w, table_resource(&db, "hospital_stays")).await,
        BTreeSet::from([
            (
                ANALYST.to_owned(),
                "table".to_owned(),
                vec!["DESCRIBE".to_owned()]
            ),
            (
                ANALYST.to_owned(),
                "columns all but [\"patient_id\"]".to_owned(),
                vec!["SELECT".to_owned()]
            ),
        ])
    );
    let filter_resource = Resource::builder()
        .data_cells_filter(
            DataCellsFilterResource::builder()
                .table_catalog_id(ACCOUNT_ID)
                .database_name(&db)
                .table_name("hospital_stays")
                .name(&fname)
                .build(),
        )
        .build();
    assert_eq!(
        grants(&w, filter_resource).await,
        BTreeSet::from([(
            AGENCY.to_owned(),
            format!("filter {fname}"),
            vec!["SELECT".to_owned()]
        )])
    );
    let filter = lf
        .get_data_cells_filter()
        .table_catalog_id(ACCOUNT_ID)
        .database_name(&db)
        .table_name("hospital_stays")
        .name(&fname)
        .send()
        .await
        .expect("filter")
        .data_cells_filter
        .expect("filter");
    assert_eq!(
        filter.row_filter().and_then(|r| r.filter_expression()),
        Some("region_code = '76'")
    );
    assert_eq!(
        filter
            .column_wildcard()
            .map(|c| c.excluded_column_names().to_vec()),
        Some(vec!["birth_year".to_owned(), "patient_id".to_owned()])
    );

    // Nothing left to do.
    let (settings, policy) = w.load();
    let plan = commands::plan(settings, policy, &w.sdk)
        .await
        .expect("plan");
    assert!(plan.is_empty(), "{plan:?}");

    // A second batch of the same product: one more crawl, a new partition, grants unchanged.
    let b = w.upload("hospital_stays", &[3], 2).await;
    w.send(&b).await;
    let report = w.run_once().await;
    assert_eq!((report.done, report.failed), (1, 0), "{report:?}");
    let parts = glue
        .get_partitions()
        .database_name(&db)
        .table_name("hospital_stays")
        .send()
        .await
        .expect("partitions");
    assert_eq!(parts.partitions().len(), 3);
    let (settings, policy) = w.load();
    assert!(
        commands::plan(settings, policy, &w.sdk)
            .await
            .expect("plan")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_for_one_product_makes_one_or_two_crawls() {
    let e = Emulator::shared().expect("emulator");
    let w = World::new(e, 3).await;
    for seed in 0..6 {
        let a = w
            .upload("hospital_stays", &[seed as u32 + 1], 100 + seed)
            .await;
        w.send(&a).await;
    }
    let report = w.run_once().await;
    assert_eq!((report.done, report.failed), (6, 0), "{report:?}");
    assert!(
        (1..=2).contains(&report.crawls_started),
        "{} crawls for 6 announcements",
        report.crawls_started
    );
    let crawls = w
        .glue()
        .list_crawls()
        .crawler_name(format!("lakemesh-{}-hospital_stays", w.database()))
        .send()
        .await
        .expect("crawls");
    assert!(
        (1..=2).contains(&crawls.crawls().len()),
        "{:?}",
        crawls.crawls()
    );
    let parts = w
        .glue()
        .get_partitions()
        .database_name(w.database())
        .table_name("hospital_stays")
        .send()
        .await
        .expect("partitions");
    assert_eq!(
        parts.partitions().len(),
        6,
        "every announced month is cataloged"
    );
}
