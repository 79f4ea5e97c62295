//! `catalog_mode = "direct"`: the table and its partitions come from the announcement (no
//! crawler), with the same governance.

use lakemesh_shared::testbed::Emulator;
use lakemesh_syncd::commands;

use crate::support::World;

#[tokio::test]
async fn direct_mode_writes_table_and_partitions_from_the_announcement() {
    let e = Emulator::shared().expect("emulator");
    let mut w = World::new(e, 3).await;
    w.extra = "catalog_mode = \"direct\"".into();
    let a = w.upload("hospital_stays", &[4, 5], 9).await;
    w.send(&a).await;
    let report = w.run_once().await;
    assert_eq!(
        (report.done, report.failed, report.crawls_started),
        (1, 0, 0),
        "{report:?}"
    );
    let db = w.database();
    let glue = w.glue();
    let t = glue
        .get_table()
        .database_name(&db)
        .name("hospital_stays")
        .send()
        .await
        .expect("table")
        .table
        .expect("t");
    let sd = t.storage_descriptor().expect("sd");
    assert_eq!(
        sd.location(),
        Some(format!("s3://{}/products/hospital_stays/", w.bucket).as_str())
    );
    assert_eq!(
        sd.serde_info().and_then(|s| s.serialization_library()),
        Some("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe")
    );
    assert_eq!(
        sd.input_format(),
        Some("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat")
    );
    let cols: Vec<(&str, &str)> = sd
        .columns()
        .iter()
        .map(|c| (c.name(), c.r#type().unwrap_or_default()))
        .collect();
    assert_eq!(cols[4], ("total_cost", "decimal(12,2)"));
    assert_eq!(cols[5], ("admission_date", "date"));
    let keys: Vec<(&str, &str)> = t
        .partition_keys()
        .iter()
        .map(|c| (c.name(), c.r#type().unwrap_or_default()))
        .collect();
    assert_eq!(keys, [("year", "string"), ("month", "string")]);
    let parts = glue
        .get_partitions()
        .database_name(&db)
        .table_name("hospital_stays")
        .send()
        .await
        .expect("parts");
    let mut got: Vec<(Vec<String>, String)> = parts
        .partitions()
        .iter()
        .map(|p| {
            (
                p.values().to_vec(),
                p.storage_descriptor()
                    .and_then(|s| s.location())
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                vec!["2026".to_owned(), "04".to_owned()],
                format!(
                    "s3://{}/products/hospital_stays/year=2026/month=04/",
                    w.bucket
                )
            ),
            (
                vec!["2026".to_owned(), "05".to_owned()],
                format!(
                    "s3://{}/products/hospital_stays/year=2026/month=05/",
                    w.bucket
                )
            ),
        ]
    );
    let crawler = glue
        .get_crawler()
        .name(format!("lakemesh-{db}-hospital_stays"))
        .send()
        .await;
    assert!(crawler.is_err(), "no crawler in direct mode");
    let (settings, policy) = w.load();
    assert!(
        commands::plan(settings, policy, &w.sdk)
            .await
            .expect("plan")
            .is_empty()
    );

    // The same announcement again: nothing new, still done.
    w.send(&a).await;
    assert_eq!(w.run_once().await.done, 1);

    // A new column: the table and the partitions announced again follow it.
    let mut b = w.upload("hospital_stays", &[5, 6], 10).await;
    b.columns.push(lakemesh_shared::announcement::Column {
        name: "length_of_stay".into(),
        ty: "int".into(),
        pii: "keep".into(),
        source_name: "DUREE".into(),
    });
    w.send(&b).await;
    assert_eq!(w.run_once().await.done, 1);
    let t = glue
        .get_table()
        .database_name(&db)
        .name("hospital_stays")
        .send()
        .await
        .expect("table")
        .table
        .expect("t");
    assert_eq!(t.storage_descriptor().expect("sd").columns().len(), 7);
    for (month, columns) in [("04", 6), ("05", 7), ("06", 7)] {
        let p = glue
            .get_partition()
            .database_name(&db)
            .table_name("hospital_stays")
            .partition_values("2026")
            .partition_values(month)
            .send()
            .await
            .expect("partition")
            .partition
            .expect("partition");
        let n = p.storage_descriptor().expect("sd").columns().len();
        assert_eq!(n, columns, "month {month}");
    }
    // The column grants still hold (exclusions cover the new column too).
    let (settings, policy) = w.load();
    assert!(
        commands::plan(settings, policy, &w.sdk)
            .await
            .expect("plan")
            .is_empty()
    );
}
