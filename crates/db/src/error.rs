use thiserror::Error;

/// Database failures a caller may want to tell apart. `sqlx::Error` is mapped
/// here once, at the edge of this crate.
#[derive(Debug, Error)]
pub enum DbError {
    #[error("row not found")]
    NotFound,
    #[error("conflict on {constraint}")]
    Conflict { constraint: String },
    #[error(
        "database schema is at version {found}, this build needs {needed}: run the `migrate` subcommand first"
    )]
    SchemaTooOld { found: i64, needed: i64 },
    #[error("applying migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error")]
    Sqlx(#[source] sqlx::Error),
}

impl From<sqlx::Error> for DbError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(ref db) if db.code().as_deref() == Some("23505") => {
                Self::Conflict {
                    constraint: db.constraint().unwrap_or("unknown").to_owned(),
                }
            }
            other => Self::Sqlx(other),
        }
    }
}

impl DbError {
    /// True when Postgres refused a value rather than failed: a data
    /// exception (class 22: a bad escape, a number or date out of range), an
    /// integrity violation (class 23, a unique conflict included) or a
    /// program limit (class 54: too deep, too long). Retrying the same
    /// rows cannot help; writing them apart from the others can.
    pub fn is_refused_value(&self) -> bool {
        match self {
            Self::Conflict { .. } => true,
            Self::Sqlx(sqlx::Error::Database(db)) => db
                .code()
                .is_some_and(|c| c.starts_with("22") || c.starts_with("23") || c.starts_with("54")),
            _ => false,
        }
    }

    /// True when the database could not answer now, though the request was
    /// fine: a statement cancelled by `statement_timeout` (57014), the server
    /// shutting down or refusing connections (class 57P, 53: out of
    /// resources, class 08: connection exception), no pooled connection in
    /// time, or a connection lost on the way.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Sqlx(sqlx::Error::Database(db)) => db.code().is_some_and(|c| {
                c == "57014" || c.starts_with("57P") || c.starts_with("53") || c.starts_with("08")
            }),
            Self::Sqlx(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::WorkerCrashed,
            ) => true,
            _ => false,
        }
    }

    /// Postgres' own message for a refused value (for a rejection's reason).
    pub fn database_message(&self) -> String {
        match self {
            Self::Sqlx(sqlx::Error::Database(db)) => db.message().to_owned(),
            other => other.to_string(),
        }
    }
}

/// A fenced update (`... WHERE <cursor> = $expected`) must touch exactly one
/// row; none means the cursor is not where the caller thought (another run
/// moved it, or there is no state row): `NotFound`.
pub(crate) fn expect_one_row(done: sqlx::postgres::PgQueryResult) -> Result<(), DbError> {
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(DbError::NotFound)
    }
}
