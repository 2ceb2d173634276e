//! The store's error type.

/// What can go wrong talking to Postgres or NATS.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A unique constraint was violated (SQLSTATE 23505): a concurrent writer
    /// won. `constraint` names the constraint.
    #[error("conflict on {constraint}")]
    Conflict {
        /// The violated constraint's name.
        constraint: String,
    },
    /// Any other database failure.
    #[error("database: {0}")]
    Database(#[source] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored event did not decode.
    #[error("event at {service} position {position}: {source}")]
    Decode {
        /// The log.
        service: forum_events::Service,
        /// The position of the bad event.
        position: u64,
        /// Why it did not decode.
        #[source]
        source: forum_events::DecodeError,
    },
    /// NATS or JetStream failed.
    #[error("nats: {0}")]
    Nats(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.code().as_deref() == Some("23505") {
                return Error::Conflict {
                    constraint: db.constraint().unwrap_or_default().to_string(),
                };
            }
        }
        Error::Database(e)
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
