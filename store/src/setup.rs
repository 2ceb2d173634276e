//! Connecting to Postgres and NATS; migrations; the JetStream stream.

use std::time::Duration;

use async_nats::jetstream;
use forum_events::{subject::Subjects, Service};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::{Error, Result};

/// Connects a pool to `url`.
///
/// # Errors
/// When the URL is invalid or the server cannot be reached.
pub async fn connect_pg(url: &str, max_connections: u32) -> Result<PgPool> {
    let options: PgConnectOptions = url
        .parse::<PgConnectOptions>()?
        .log_statements(tracing::log::LevelFilter::Trace);
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?)
}

/// Creates the database named in `url` when it does not exist, connecting
/// to the server's `postgres` database to do so.
///
/// # Errors
/// When the server cannot be reached or refuses.
pub async fn create_database(url: &str) -> Result<()> {
    let options: PgConnectOptions = url.parse()?;
    let name = options.get_database().unwrap_or("forum").to_string();
    let admin = options.clone().database("postgres");
    let mut conn = sqlx::PgConnection::connect_with(&admin).await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("create database {quoted}"))
            .execute(&mut conn)
            .await
        {
            // A concurrent creator won: fine.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Applies the migrations in `migrations/` (embedded at build time).
///
/// # Errors
/// When a migration fails or a released one was changed.
pub async fn migrate(pool: &PgPool) -> Result<()> {
    sqlx::migrate!("../migrations").run(pool).await?;
    ensure_logs(pool).await
}

/// Makes sure every service of [`Service::ALL`] has its schema, its
/// append-only event log and its outbox, as migration 0001 made them for
/// the first four: a new domain gets its log from the list alone.
/// Idempotent.
///
/// # Errors
/// Database failure.
pub async fn ensure_logs(pool: &PgPool) -> Result<()> {
    for service in Service::ALL {
        let svc = service.as_str();
        // A log that exists is left alone: its DDL would lock the table
        // against the appends of running instances at every start.
        let exists: Option<String> = sqlx::query_scalar("select to_regclass($1)::text")
            .bind(format!("{svc}.events"))
            .fetch_one(pool)
            .await?;
        if exists.is_some() {
            continue;
        }
        let mut tx = pool.begin().await?;
        for statement in [
            format!("create schema if not exists {svc}"),
            format!(
                "create table if not exists {svc}.events (
                    position       bigint      primary key check (position > 0),
                    stream_id      uuid        not null,
                    version        integer     not null check (version > 0),
                    event_id       uuid        not null unique,
                    event_type     text        not null,
                    schema_version smallint    not null,
                    payload        bytea       not null,
                    correlation_id uuid        not null,
                    causation_id   uuid        not null,
                    actor          uuid,
                    recorded_at    timestamptz not null,
                    unique (stream_id, version)
                )"
            ),
            format!(
                "create index if not exists events_stream_id_version_idx
                 on {svc}.events (stream_id, version)"
            ),
            format!(
                "create or replace trigger events_append_only
                 before update or delete or truncate on {svc}.events
                 for each statement execute function public.forum_refuse_change()"
            ),
            format!(
                "create table if not exists {svc}.outbox (
                    singleton          boolean primary key default true check (singleton),
                    published_position bigint  not null default 0
                )"
            ),
            format!("insert into {svc}.outbox default values on conflict do nothing"),
        ] {
            sqlx::query(&statement).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// How a process proves who it is to NATS (each role has its own user in
/// `nats.conf`, with the permissions it needs). Its `Debug` shows no secret.
#[derive(Clone, Default)]
pub enum NatsCredentials {
    /// No credentials (a server without authorization, e.g. development).
    #[default]
    None,
    /// A user and password of the server's `authorization` block.
    UserPassword {
        /// The user.
        user: String,
        /// Its password (never logged).
        password: String,
    },
    /// A `.creds` file (JWT and NKey seed) for decentralized auth.
    CredsFile(std::path::PathBuf),
}

impl std::fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NatsCredentials::None => f.write_str("None"),
            NatsCredentials::UserPassword { user, .. } => {
                write!(f, "UserPassword {{ user: {user:?}, password: \"***\" }}")
            }
            NatsCredentials::CredsFile(p) => write!(f, "CredsFile({p:?})"),
        }
    }
}

/// Connects to NATS without credentials.
///
/// # Errors
/// When the server cannot be reached or refuses.
pub async fn connect_nats(url: &str, name: &str) -> Result<async_nats::Client> {
    connect_nats_as(url, name, &NatsCredentials::None).await
}

/// Connects to NATS as `credentials`.
///
/// # Errors
/// When the server cannot be reached, the creds file cannot be read, or the
/// server refuses the credentials.
pub async fn connect_nats_as(
    url: &str,
    name: &str,
    credentials: &NatsCredentials,
) -> Result<async_nats::Client> {
    let options = match credentials {
        NatsCredentials::None => async_nats::ConnectOptions::new(),
        NatsCredentials::UserPassword { user, password } => {
            async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
        NatsCredentials::CredsFile(path) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| Error::Nats(format!("NATS credentials file {}: {e}", path.display())))?,
    };
    options
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(10)))
        .connect(nats_servers(url)?)
        .await
        .map_err(|e| Error::Nats(e.to_string()))
}

/// The servers of `FORUM_NATS_URL`: one URL, or a cluster's seed list
/// separated by commas (`nats://a:4222,nats://b:4222`). The client connects
/// to one of them and learns the rest of the cluster from it.
///
/// # Errors
/// An empty list or a URL that does not parse, named.
pub fn nats_servers(url: &str) -> Result<Vec<async_nats::ServerAddr>> {
    let servers = url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<async_nats::ServerAddr>()
                .map_err(|e| Error::Nats(format!("NATS server URL {s:?}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    if servers.is_empty() {
        return Err(Error::Nats("no NATS server URL given".into()));
    }
    Ok(servers)
}

/// Creates or updates the stream capturing `<prefix>.evt.>`: file storage,
/// two-minute de-duplication window on `Nats-Msg-Id`, events kept 30 days
/// (the Postgres logs keep them for ever).
///
/// # Errors
/// When JetStream is not enabled or refuses the configuration.
pub async fn ensure_stream(js: &jetstream::Context, subjects: &Subjects) -> Result<()> {
    let config = jetstream::stream::Config {
        name: subjects.stream_name(),
        subjects: vec![subjects.all_events()],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        max_age: Duration::from_secs(30 * 24 * 3600),
        ..Default::default()
    };
    js.create_or_update_stream(config)
        .await
        .map(|_| ())
        .map_err(|e| Error::Nats(format!("stream {}: {e}", subjects.stream_name())))
}

/// Deletes the stream (used by tests to clean up after themselves).
///
/// # Errors
/// When JetStream refuses.
pub async fn delete_stream(js: &jetstream::Context, subjects: &Subjects) -> Result<()> {
    js.delete_stream(subjects.stream_name())
        .await
        .map(|_| ())
        .map_err(|e| Error::Nats(e.to_string()))
}

#[cfg(test)]
mod nats_url_tests {
    use super::nats_servers;

    #[test]
    fn a_seed_list_of_a_cluster_is_split_and_each_url_checked() {
        let servers =
            nats_servers("nats://127.0.0.1:14222, nats://127.0.0.1:14223,nats://127.0.0.1:14224")
                .expect("three servers");
        assert_eq!(servers.len(), 3);
        assert_eq!(
            nats_servers("nats://127.0.0.1:4222").map(|s| s.len()).ok(),
            Some(1)
        );
        assert!(nats_servers("").is_err());
        assert!(nats_servers(" , ").is_err());
        let bad = nats_servers("nats://127.0.0.1:4222,nats://host:notaport")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(bad.contains("host:notaport"), "{bad}");
    }
}
