//! The trait every read model implements.

pub use forum_events::progress::Progress;

use forum_events::{RecordedEvent, Service};
use futures::future::BoxFuture;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

/// A read model built from one or more logs.
pub trait Projection: Send + Sync + 'static {
    /// Stable name, e.g. `users`.
    fn name(&self) -> &'static str;
    /// The version this build fills; bump it when the tables or the way
    /// events are applied change, then rebuild.
    fn version(&self) -> u32;
    /// The logs it reads.
    fn sources(&self) -> &'static [Service];
    /// `create table` / `create index` statements for the tables, in schema
    /// `schema`, separated by `;` (no `;` inside a statement).
    fn create_sql(&self, schema: &str) -> String;
    /// The tables exposed as views `read.<table>`.
    fn tables(&self) -> &'static [&'static str];
    /// Applies a batch of events of one log, in position order, inside the
    /// caller's transaction. Events of types it does not use are ignored.
    /// The result must be the same as applying the events one at a time,
    /// in order (the runner applies parts of a failing batch to find the
    /// event that fails).
    ///
    /// # Errors
    /// [`crate::Error::Poison`] for an event that cannot be decoded;
    /// database errors otherwise.
    fn apply<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        schema: &'a str,
        events: &'a [RecordedEvent],
    ) -> BoxFuture<'a, Result<()>>;

    /// Deletes, inside the caller's transaction, every row derived from the
    /// events of one stream (aggregate) `stream` of one of its logs.
    /// `events` are that stream's events up to the checkpoint, in position
    /// order (some may not decode: skip them). Every row of a projection
    /// must derive from the events of one stream only, so that
    /// `forum replay retry-poison` can forget a stream and apply its events
    /// again in order, as a rebuild would.
    ///
    /// The default deletes the rows of [`Projection::stream_rows`].
    ///
    /// # Errors
    /// Database failure.
    fn forget_stream<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        schema: &'a str,
        stream: Uuid,
        _events: &'a [RecordedEvent],
    ) -> BoxFuture<'a, Result<()>> {
        let rows = self.stream_rows();
        Box::pin(async move {
            let Some((table, column)) = rows else {
                return Err(crate::Error::State(format!(
                    "projection {} names no stream rows to forget",
                    self.name()
                )));
            };
            sqlx::query(&format!("delete from {schema}.{table} where {column} = $1"))
                .bind(stream)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
    }

    /// The table whose rows one stream owns and the column naming that
    /// stream, for a projection with a row per stream: what the default
    /// [`Projection::forget_stream`] deletes. A projection whose streams own
    /// rows in several tables overrides `forget_stream` instead.
    fn stream_rows(&self) -> Option<(&'static str, &'static str)> {
        None
    }

    /// Columns of [`Projection::tables`] whose values do not come from
    /// events (e.g. a `refreshed_at default now()`), left out when
    /// `forum replay verify` compares two versions. None by default.
    fn volatile_columns(&self) -> &'static [&'static str] {
        &[]
    }

    /// The schema of a version: `proj_<name>_v<version>`.
    fn schema(&self, version: u32) -> String {
        format!("proj_{}_v{}", self.name(), version)
    }
}
