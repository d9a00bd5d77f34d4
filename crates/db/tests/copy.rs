//! The binary COPY writer produces what Postgres reads back unchanged.

use chrono::{TimeZone, Utc};
use db::copy::BinaryCopyWriter;
use sqlx::PgPool;

#[sqlx::test(migrations = false)]
async fn binary_copy_round_trips_every_supported_type(pool: PgPool) {
    sqlx::query("CREATE TABLE t (a int4, b int8, c bool, d text, e jsonb, f timestamptz, g text)")
        .execute(&pool)
        .await
        .unwrap();
    let at = Utc.with_ymd_and_hms(2026, 8, 20, 9, 0, 3).unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let mut copy = conn
        .copy_in_raw("COPY t FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    let mut writer = BinaryCopyWriter::new();
    writer
        .begin_row(7)
        .int4(-7)
        .int8(10_530_412)
        .bool(true)
        .text("北京, 朝阳")
        .jsonb(r#"{"price": "139800", "title": "帕萨特"}"#)
        .timestamptz(at)
        .null();
    // Sent in two chunks, as bulk writers do.
    copy.send(writer.take()).await.unwrap();
    writer
        .begin_row(7)
        .int4(1)
        .int8(2)
        .bool(false)
        .text("")
        .jsonb("[]")
        .timestamptz(at)
        .text("x");
    copy.send(writer.finish()).await.unwrap();
    assert_eq!(copy.finish().await.unwrap(), 2);
    drop(conn);

    type Row = (
        i32,
        i64,
        bool,
        String,
        serde_json::Value,
        chrono::DateTime<Utc>,
        Option<String>,
    );
    let rows: Vec<Row> = sqlx::query_as("SELECT a, b, c, d, e, f, g FROM t ORDER BY a")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows[0].0, -7);
    assert_eq!(rows[0].1, 10_530_412);
    assert!(rows[0].2);
    assert_eq!(rows[0].3, "北京, 朝阳");
    assert_eq!(rows[0].4["title"], "帕萨特");
    assert_eq!(rows[0].5, at);
    assert_eq!(rows[0].6, None);
    assert_eq!(rows[1].6.as_deref(), Some("x"));
}
