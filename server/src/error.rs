//! Errors: [`ServerError`] for the server as a whole (it could not start, its storage
//! failed), [`HttpError`] for one request (a status and the JSON body `{"error", "detail"}`).

use crate::api::ApiError;
use hyper::StatusCode;

/// Why [`crate::serve`] could not start or stopped with a fault.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listening socket could not be bound, or accepting failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The data directory could not be created.
    #[error("cannot create the data directory {dir}: {source}")]
    DataDir {
        /// The directory.
        dir: std::path::PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error("database {path}: {source}")]
    Database {
        /// The database file.
        path: std::path::PathBuf,
        /// SQLite's reason.
        source: rusqlite::Error,
    },
    /// The database was written by a newer scry (its schema version is past ours).
    #[error(
        "database {path} has schema version {found}, newer than this scry knows ({known}); run a newer scry server, or point --data at another directory"
    )]
    SchemaTooNew {
        /// The database file.
        path: std::path::PathBuf,
        /// The version in the file.
        found: i64,
        /// The last version this build knows.
        known: i64,
    },
    /// Plain HTTP on an address that is not loopback, without `insecure_listen`.
    #[error(
        "refusing to serve plain HTTP on {addr}, which is not a loopback address: anyone on the network could read the tokens; give --tls-cert and --tls-key to serve HTTPS, or --insecure-listen to serve plain HTTP anyway (behind a TLS proxy, on a trusted network)"
    )]
    InsecureListen {
        /// The address asked for.
        addr: std::net::SocketAddr,
    },
    /// The TLS certificate or key could not be loaded.
    #[error(
        "TLS: {detail}; give a PEM certificate chain with --tls-cert and its PEM private key with --tls-key"
    )]
    Tls {
        /// What failed.
        detail: String,
    },
    /// The writer thread could not be started.
    #[error("cannot start the writer thread: {0}")]
    Thread(std::io::Error),
}

/// A request's failure: the HTTP status and the JSON error body.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpError {
    /// 4xx for bad input, 5xx only for faults of the server.
    pub status: StatusCode,
    /// `{"error": short, "detail": what to do}`.
    pub body: ApiError,
}

impl HttpError {
    /// An error with a status, a short text and a detail saying what to do.
    pub fn new(status: StatusCode, error: impl Into<String>, detail: impl Into<String>) -> Self {
        HttpError {
            status,
            body: ApiError {
                error: error.into(),
                detail: detail.into(),
            },
        }
    }

    /// 400: the request is wrong; `detail` says how to fix it.
    pub fn bad_request(error: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, detail)
    }

    /// 404: no such thing.
    pub fn not_found(error: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error, detail)
    }

    /// 500: a fault of the server (its storage); the client cannot fix it.
    pub fn internal(error: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, error, detail)
    }

    /// 503: the server is stopping.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server stopping",
            "the server is shutting down; retry against the restarted server",
        )
    }
}

impl From<rusqlite::Error> for HttpError {
    fn from(e: rusqlite::Error) -> Self {
        HttpError::internal(
            "storage error",
            format!(
                "the server's database failed ({e}); see the server's log, this is not the request's fault"
            ),
        )
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.body.error,
            self.body.detail
        )
    }
}

impl std::error::Error for HttpError {}
