//! Batches whose columns differ from the table's, in crawler mode: a new column is added to
//! the table (an incremental crawler only logs schema changes), a column whose type changed is
//! refused before anything is crawled, so that the product's later batches still go through.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use lakemesh_shared::announcement::Column;
use lakemesh_shared::testbed::Emulator;
use parquet::arrow::ArrowWriter;

use crate::support::{World, log_lines, stays_columns, stays_parquet};

/// [`stays_parquet`] with one more string column, or with `total_cost` as a string.
fn variant(add: Option<&str>, cost_as_string: bool) -> Vec<u8> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(stays_parquet(4, 9)),
    )
    .unwrap()
    .build()
    .unwrap();
    let batch = reader.into_iter().next().unwrap().unwrap();
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    if cost_as_string {
        let i = fields
            .iter()
            .position(|f| f.name() == "total_cost")
            .unwrap();
        fields[i] = Field::new("total_cost", DataType::Utf8, true);
        columns[i] = Arc::new(StringArray::from(vec!["1,50", "3,00", "4,50", "6,00"]));
    }
    if let Some(name) = add {
        fields.push(Field::new(name, DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(vec!["A", "B", "C", "D"])));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    buf
}

fn column(name: &str, ty: &str) -> Column {
    Column {
        name: name.into(),
        ty: ty.into(),
        pii: "keep".into(),
        source_name: name.to_uppercase(),
    }
}

async fn table_columns(w: &World) -> Vec<(String, String)> {
    let t = w
        .glue()
        .get_table()
        .database_name(w.database())
        .name("hospital_stays")
        .send()
        .await
        .expect("table");
    t.table()
        .and_then(|t| t.storage_descriptor())
        .map(|sd| {
            sd.columns()
                .iter()
                .map(|c| {
                    (
                        c.name().to_owned(),
                        c.r#type().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_column_is_added_and_a_changed_type_is_refused_without_blocking_the_product() {
    let e = Emulator::shared().expect("emulator");
    let w = World::new(e, 2).await;
    w.send(&w.upload("hospital_stays", &[1], 1).await).await;
    let r = w.run_once().await;
    assert_eq!((r.done, r.failed, r.rejections.len()), (1, 0, 0), "{r:?}");
    let before = table_columns(&w).await;
    assert!(!before.iter().any(|(n, _)| n == "ward"), "{before:?}");

    // A batch with one more column: the table gets it.
    let mut cols = stays_columns();
    cols.push(column("ward", "string"));
    let a = w
        .upload_file(
            "hospital_stays",
            &[2],
            2,
            &variant(Some("ward"), false),
            cols,
        )
        .await;
    w.send(&a).await;
    let r = w.run_once().await;
    assert_eq!((r.done, r.failed, r.rejections.len()), (1, 0, 0), "{r:?}");
    let after = table_columns(&w).await;
    assert!(
        after.contains(&("ward".into(), "string".into())),
        "the new column is in the table: {after:?}"
    );
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "the others are unchanged"
    );
    assert!(
        !log_lines(&["new columns ward string", "column exclusion list"]).is_empty(),
        "the warning names the column and who now sees it"
    );

    // A batch whose total_cost became a string: refused, nothing crawled or changed.
    let mut cols = stays_columns();
    for c in &mut cols {
        if c.name == "total_cost" {
            c.ty = "string".into();
        }
    }
    let bad = w
        .upload_file("hospital_stays", &[3], 3, &variant(None, true), cols)
        .await;
    w.send(&bad).await;
    let r = w.run_once().await;
    assert_eq!(r.done, 0, "{r:?}");
    assert!(
        r.rejections.iter().all(|x| x
            .reason
            .contains("column total_cost is string in this batch but decimal(12,2) in table"))
            && !r.rejections.is_empty(),
        "{:#?}",
        r.rejections
    );
    assert_eq!(w.depth(&w.queue_url).await, 0);
    assert_eq!(
        w.depth(&w.dlq_url).await,
        1,
        "the refused batch is in the DLQ"
    );
    assert_eq!(table_columns(&w).await, after, "the table is unchanged");

    // The product's next good batch still goes through.
    w.send(&w.upload("hospital_stays", &[4], 4).await).await;
    let r = w.run_once().await;
    assert_eq!((r.done, r.failed, r.rejections.len()), (1, 0, 0), "{r:?}");
}
