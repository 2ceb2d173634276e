//! The command side's error type (infrastructure only; domain refusals are
//! [`crate::Rejection`]s), and how a failure would fare if tried again
//! ([`Class`]).

/// A failure of the infrastructure around a decision.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Postgres, the event log or the relay.
    #[error(transparent)]
    Store(#[from] forum_store::Error),
    /// NATS.
    #[error("nats: {0}")]
    Nats(String),
    /// A read model applied inline, in the append's transaction.
    #[error("inline projection: {0}")]
    Projection(#[from] forum_projections::Error),
    /// Deriving notifications inline met what the deriver parks (an event
    /// that does not decode, a panic).
    #[error("inline derivation: {0}")]
    Derivation(String),
    /// Work done inline without savepoints
    /// ([`forum_projections::inline::Guard::Fast`]) failed: the runtime
    /// tries the batch again at once with savepoints, where such a failure
    /// leaves the work to the projector or the deriver.
    #[error("unguarded inline work: {0}")]
    Unguarded(Box<Error>),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Store(e.into())
    }
}

/// The command side's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What trying a failed transaction again would do: the runtime retries
/// [`Class::Transient`] failures and looks for the culprit command of the
/// others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// May well succeed later: the connection was lost, the pool had no
    /// connection in time, a serialization failure (40001) or deadlock
    /// (40P01), Postgres shutting down or starting (57P01–57P03), out of
    /// resources (class 53), a lock or statement timeout.
    Transient,
    /// The data cannot be stored, and will not be next time: a data
    /// exception (SQLSTATE class 22, e.g. U+0000 in a text) or an integrity
    /// violation (class 23) other than a unique-key conflict, or a value the
    /// driver cannot encode.
    Unstorable,
    /// A unique key already holds this value (23505, mapped by the store to
    /// [`forum_store::Error::Conflict`]).
    Conflict,
    /// Fails the same way again for another reason (a bug, a missing table,
    /// an event that does not decode).
    Permanent,
}

impl Error {
    /// How this failure would fare if tried again.
    pub fn class(&self) -> Class {
        match self {
            Error::Nats(_) => Class::Transient,
            Error::Store(e) => store_class(e),
            // Events it cannot apply are parked, not errors: what is left
            // is a database failure, or a bug.
            Error::Projection(e) => match e.failure() {
                forum_projections::error::Failure::Transient => Class::Transient,
                forum_projections::error::Failure::Deterministic => Class::Permanent,
            },
            Error::Derivation(_) => Class::Permanent,
            Error::Unguarded(e) => e.class(),
        }
    }
}

fn store_class(e: &forum_store::Error) -> Class {
    match e {
        forum_store::Error::Conflict { .. } => Class::Conflict,
        forum_store::Error::Database(e) => sqlx_class(e),
        forum_store::Error::Nats(_) => Class::Transient,
        forum_store::Error::Migrate(_) | forum_store::Error::Decode { .. } => Class::Permanent,
    }
}

/// How a failed sqlx call would fare if tried again.
pub fn sqlx_class(e: &sqlx::Error) -> Class {
    match e {
        sqlx::Error::Database(db) => db.code().map_or(Class::Permanent, |c| sqlstate_class(&c)),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Class::Transient,
        sqlx::Error::Encode(_) => Class::Unstorable,
        _ => Class::Permanent,
    }
}

/// How a Postgres error with this SQLSTATE would fare if tried again.
pub fn sqlstate_class(code: &str) -> Class {
    match code {
        "23505" => Class::Conflict,
        // serialization failure, deadlock, lock not available, statement
        // timeout or cancel, admin/crash shutdown, cannot connect now, idle
        // session timeout, idle-in-transaction timeout
        "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" | "57P05" | "25P03" => {
            Class::Transient
        }
        // connection exception, insufficient resources, system error
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("58") => Class::Transient,
        c if c.starts_with("22") || c.starts_with("23") => Class::Unstorable,
        _ => Class::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classified_by_what_a_retry_would_do() {
        for code in [
            "40001", "40P01", "57P01", "57P02", "57P03", "08006", "08003", "53300", "55P03",
        ] {
            assert_eq!(sqlstate_class(code), Class::Transient, "{code}");
        }
        for code in [
            "22021", "22P05", "22003", "22001", "23502", "23503", "23514",
        ] {
            assert_eq!(sqlstate_class(code), Class::Unstorable, "{code}");
        }
        assert_eq!(sqlstate_class("23505"), Class::Conflict);
        for code in ["42P01", "42703", "XX000", "25P02"] {
            assert_eq!(sqlstate_class(code), Class::Permanent, "{code}");
        }
    }

    #[test]
    fn lost_connections_and_pool_timeouts_are_transient() {
        assert_eq!(
            Error::from(sqlx::Error::PoolTimedOut).class(),
            Class::Transient
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(Error::from(sqlx::Error::Io(io)).class(), Class::Transient);
        assert_eq!(Error::Nats("down".into()).class(), Class::Transient);
    }

    #[test]
    fn store_conflicts_and_bugs_are_not_retried() {
        let conflict = Error::Store(forum_store::Error::Conflict {
            constraint: "events_stream_id_version_key".into(),
        });
        assert_eq!(conflict.class(), Class::Conflict);
        assert_eq!(
            Error::from(sqlx::Error::RowNotFound).class(),
            Class::Permanent
        );
    }
}
