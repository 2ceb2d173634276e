//! Projection versions: which is live, which is being rebuilt, where each
//! one's checkpoints stand.

use forum_events::Service;
use sqlx::{PgConnection, PgPool, Row};

use crate::{Projection, Result};

/// The advisory lock class for registry changes of one projection.
const REGISTRY_LOCK_CLASS: i32 = 0x5052_4f4a;

/// Serializes registry changes of `projection` for the transaction.
///
/// # Errors
/// Database failure.
pub async fn lock(tx: &mut PgConnection, projection: &str) -> Result<()> {
    sqlx::query("select pg_advisory_xact_lock($1, hashtext($2))")
        .bind(REGISTRY_LOCK_CLASS)
        .bind(projection)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Creates version `version`'s schema, tables and checkpoints (at zero),
/// registered in `state`. Does nothing for a version that exists.
///
/// # Errors
/// Database failure.
pub async fn create_version(
    tx: &mut PgConnection,
    p: &dyn Projection,
    version: u32,
    state: &str,
) -> Result<()> {
    let schema = p.schema(version);
    sqlx::query(&format!("create schema if not exists {schema}"))
        .execute(&mut *tx)
        .await?;
    for statement in p
        .create_sql(&schema)
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    sqlx::query(
        "insert into proj.registry (projection, version, state) values ($1, $2, $3)
         on conflict do nothing",
    )
    .bind(p.name())
    .bind(version as i32)
    .bind(state)
    .execute(&mut *tx)
    .await?;
    for service in p.sources() {
        sqlx::query(
            "insert into proj.checkpoints (projection, version, service) values ($1, $2, $3)
             on conflict do nothing",
        )
        .bind(p.name())
        .bind(version as i32)
        .bind(service.as_str())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Points the `read.<table>` views at `version`.
///
/// # Errors
/// Database failure.
pub async fn point_views(tx: &mut PgConnection, p: &dyn Projection, version: u32) -> Result<()> {
    let schema = p.schema(version);
    for table in p.tables() {
        sqlx::query(&format!("drop view if exists read.{table}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "create view read.{table} as select * from {schema}.{table}"
        ))
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The live version of a projection, if any.
///
/// # Errors
/// Database failure.
pub async fn live_version(conn: &mut PgConnection, name: &str) -> Result<Option<u32>> {
    let v: Option<i32> = sqlx::query_scalar(
        "select version from proj.registry where projection = $1 and state = 'live'",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(v.map(|v| v as u32))
}

/// Makes sure the projection has a live version: on a new database, the
/// code's version is created and made live (it then fills from position
/// zero). Returns the live version.
///
/// # Errors
/// Database failure.
pub fn ensure_live<'a>(
    pool: &'a PgPool,
    p: &'a dyn Projection,
) -> futures::future::BoxFuture<'a, Result<u32>> {
    Box::pin(ensure_live_inner(pool, p))
}

async fn ensure_live_inner(pool: &PgPool, p: &dyn Projection) -> Result<u32> {
    let mut tx = pool.begin().await?;
    lock(&mut tx, p.name()).await?;
    let live = match live_version(&mut tx, p.name()).await? {
        Some(v) => v,
        None => {
            create_version(&mut tx, p, p.version(), "live").await?;
            sqlx::query(
                "update proj.registry set switched_at = now() where projection = $1 and version = $2",
            )
            .bind(p.name())
            .bind(p.version() as i32)
            .execute(&mut *tx)
            .await?;
            point_views(&mut tx, p, p.version()).await?;
            p.version()
        }
    };
    tx.commit().await?;
    Ok(live)
}

/// Where a projection version's checkpoints stand, per log.
///
/// # Errors
/// Database failure.
pub async fn checkpoints(
    conn: &mut PgConnection,
    name: &str,
    version: u32,
) -> Result<Vec<(String, u64)>> {
    let rows = sqlx::query(
        "select service, position from proj.checkpoints
         where projection = $1 and version = $2 order by service",
    )
    .bind(name)
    .bind(version as i32)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get::<String, _>("service")?,
                r.try_get::<i64, _>("position")? as u64,
            ))
        })
        .collect()
}

/// Clears the error an older build recorded on a version it stopped
/// (today's builds park the event instead; see [`crate::poison`]).
///
/// # Errors
/// Database failure.
pub async fn clear_error(pool: &PgPool, name: &str, version: u32) -> Result<()> {
    sqlx::query(
        "update proj.registry set error = null, error_service = null, error_position = null, error_type = null
         where projection = $1 and version = $2",
    )
    .bind(name)
    .bind(version as i32)
    .execute(pool)
    .await?;
    Ok(())
}

/// Locks the checkpoint of (`name`, `version`) on `service` for the
/// transaction and returns it (`None` when the version does not read that
/// log).
///
/// # Errors
/// Database failure.
pub async fn lock_checkpoint(
    tx: &mut PgConnection,
    name: &str,
    version: u32,
    service: Service,
) -> Result<Option<u64>> {
    let position: Option<i64> = sqlx::query_scalar(
        "select position from proj.checkpoints
         where projection = $1 and version = $2 and service = $3 for update",
    )
    .bind(name)
    .bind(version as i32)
    .bind(service.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    Ok(position.map(|p| p as u64))
}

/// Moves the checkpoint of (`name`, `version`) on `service` to `position`.
///
/// # Errors
/// Database failure.
pub async fn set_checkpoint(
    tx: &mut PgConnection,
    name: &str,
    version: u32,
    service: Service,
    position: u64,
) -> Result<()> {
    sqlx::query(
        "update proj.checkpoints set position = $4
         where projection = $1 and version = $2 and service = $3",
    )
    .bind(name)
    .bind(version as i32)
    .bind(service.as_str())
    .bind(position as i64)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
