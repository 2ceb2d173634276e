//! The gauges read at scrape time, against a real Postgres: what they say,
//! and that scrapes close together share one read.

use std::time::Duration;

use forum_events::Service;
use forum_telemetry::{Exporter, Source};
use sqlx::{Connection, PgConnection, PgPool};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A fresh database holding an auth log of `n` events, `published` of them
/// published by its relay (the columns the relay gauge reads).
async fn database(n: i64, published: i64) -> (String, PgPool) {
    let name = format!("forum_tele_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&format!("{SERVER}/postgres"))
        .await
        .expect("connect");
    sqlx::query(&format!("create database {name}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    let pool = PgPool::connect(&format!("{SERVER}/{name}"))
        .await
        .expect("pool");
    for statement in [
        "create schema auth",
        "create table auth.events (position bigint primary key, recorded_at timestamptz not null)",
        "create table auth.outbox (published_position bigint not null)",
    ] {
        sqlx::query(statement).execute(&pool).await.expect("schema");
    }
    sqlx::query(
        "insert into auth.events select g, now() - interval '1 minute' from generate_series(1, $1) g",
    )
    .bind(n)
    .execute(&pool)
    .await
    .expect("events");
    sqlx::query("insert into auth.outbox values ($1)")
        .bind(published)
        .execute(&pool)
        .await
        .expect("outbox");
    (name, pool)
}

async fn drop_database(name: &str, pool: PgPool) {
    pool.close().await;
    let mut admin = PgConnection::connect(&format!("{SERVER}/postgres"))
        .await
        .expect("connect");
    sqlx::query(&format!("drop database if exists {name} with (force)"))
        .execute(&mut admin)
        .await
        .expect("drop database");
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn the_relay_lag_is_read_at_scrape_and_scrapes_close_together_share_one_read() {
    let (name, pool) = database(5, 2).await;
    let relays = vec![Source::Relays(vec![Service::Auth])];
    let cached =
        Exporter::new(pool.clone(), None, relays.clone()).fresh_for(Duration::from_secs(3600));
    let text = cached.render().await;
    assert_eq!(
        value(&text, "forum_relay_lag_events{service=\"auth\"}"),
        Some(3.0),
        "{text}"
    );
    let age = value(&text, "forum_relay_lag_seconds{service=\"auth\"}").expect("seconds");
    assert!(
        (59.0..3600.0).contains(&age),
        "the oldest unpublished event is a minute old: {age}"
    );
    assert_eq!(
        value(&text, "forum_pg_pool_max_connections"),
        Some(10.0),
        "{text}"
    );

    // Two more events: a scrape within the freshness window is answered
    // from the last read, one of an exporter without that window reads
    // again.
    sqlx::query("insert into auth.events values (6, now()), (7, now())")
        .execute(&pool)
        .await
        .expect("more events");
    let again = cached.render().await;
    assert_eq!(
        value(&again, "forum_relay_lag_events{service=\"auth\"}"),
        Some(3.0)
    );
    let fresh = Exporter::new(pool.clone(), None, relays).fresh_for(Duration::ZERO);
    let text = fresh.render().await;
    assert_eq!(
        value(&text, "forum_relay_lag_events{service=\"auth\"}"),
        Some(5.0),
        "{text}"
    );

    // Caught up: no lag, in events or seconds.
    sqlx::query("update auth.outbox set published_position = 7")
        .execute(&pool)
        .await
        .expect("publish");
    let text = fresh.render().await;
    assert_eq!(
        value(&text, "forum_relay_lag_events{service=\"auth\"}"),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "forum_relay_lag_seconds{service=\"auth\"}"),
        Some(0.0)
    );
    drop_database(&name, pool).await;
}
