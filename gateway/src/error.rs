//! The one error enum of the gateway, and how each error looks to an HTTP client: a status code
//! for both APIs, plus the S3 error code for S3 (the XML body itself is written by s3s).

use http::StatusCode;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An answer from the cluster (through the typed client).
    #[error(transparent)]
    Cluster(#[from] shoal_actors::Error),
    #[error("{0}")]
    BadRequest(String),
    /// A body without a length: the cluster needs the size before the first byte.
    #[error("{0}")]
    LengthRequired(String),
    #[error("range not satisfiable (object size {size})")]
    RangeNotSatisfiable { size: u64 },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotImplemented(String),
    /// Refused because something else is in progress (a lifecycle operation while another runs).
    #[error("{0}")]
    Conflict(String),
    /// The client's request body could not be read whole (cut short, a bad chunk signature).
    #[error("{0}")]
    ClientBody(String),
    /// Reading the cluster-side source of a write failed (a copy's source, an upload's parts).
    #[error("reading the source: {0}")]
    Source(String),
    #[error("content MD5 mismatch: sent {sent}, computed {computed}")]
    BadDigest { sent: String, computed: String },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// The HTTP status both APIs answer with.
    pub fn status(&self) -> StatusCode {
        use shoal_actors::Error as C;
        match self {
            Error::Cluster(e) => match e {
                C::NotFound(_) => StatusCode::NOT_FOUND,
                C::BadRequest(m) if m.contains("already exists") => StatusCode::CONFLICT,
                C::BadRequest(_) | C::Decode(_) => StatusCode::BAD_REQUEST,
                C::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                C::Forbidden(_) => StatusCode::FORBIDDEN,
                // Busy, offline and timeouts pass: clients retry 503 (the AIStore SDK, boto3).
                // A put that raced a map change stored nothing: the client sends it again.
                // So is a target that cannot act as an owner for a moment (restarting, a disk
                // just failed), and a map that kept changing under the request.
                C::Busy(_)
                | C::Offline(_)
                | C::Timeout(_)
                | C::Io(_)
                | C::MapChanged(_)
                | C::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                C::Protocol(m) if m.contains("map is changing") => StatusCode::SERVICE_UNAVAILABLE,
                C::NoSpace(_) => StatusCode::INSUFFICIENT_STORAGE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::LengthRequired(_) => StatusCode::LENGTH_REQUIRED,
            Error::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::BadDigest { .. } => StatusCode::BAD_REQUEST,
            Error::ClientBody(m) if m.contains("Signature") => StatusCode::FORBIDDEN,
            Error::ClientBody(_) => StatusCode::BAD_REQUEST,
            Error::Source(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Io(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// Whether the same request may simply be tried again (nothing was consumed or changed;
    /// for a put, only while its body can be sent again).
    pub fn is_transient(&self) -> bool {
        use shoal_actors::Error as C;
        matches!(
            self,
            Error::Cluster(
                C::Busy(_)
                    | C::Offline(_)
                    | C::Timeout(_)
                    | C::Io(_)
                    | C::MapChanged(_)
                    | C::Unavailable(_)
            )
        )
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Cluster(shoal_actors::Error::NotFound(_)))
    }

    /// The S3 error for this error.
    pub fn to_s3(&self) -> s3s::S3Error {
        use s3s::S3ErrorCode as S;
        use shoal_actors::Error as C;
        let code = match self {
            Error::Cluster(C::NotFound(m)) if m.starts_with("bucket") => S::NoSuchBucket,
            Error::Cluster(C::NotFound(_)) => S::NoSuchKey,
            Error::Cluster(C::BadRequest(m)) if m.contains("already exists") => {
                S::BucketAlreadyOwnedByYou
            }
            Error::Cluster(C::BadRequest(m)) if m.contains("bucket name") => S::InvalidBucketName,
            Error::Cluster(C::BadRequest(_)) => S::InvalidRequest,
            Error::Cluster(C::Unauthorized(_) | C::Forbidden(_)) => S::AccessDenied,
            Error::Cluster(
                C::Busy(_) | C::Offline(_) | C::Timeout(_) | C::Io(_) | C::Unavailable(_),
            ) => S::ServiceUnavailable,
            Error::Cluster(C::MapChanged(_)) => S::SlowDown,
            Error::Cluster(C::Protocol(m)) if m.contains("map is changing") => S::SlowDown,
            Error::Cluster(C::NoSpace(_)) => S::ServiceUnavailable,
            Error::Cluster(_) => S::InternalError,
            Error::BadRequest(_) => S::InvalidRequest,
            Error::LengthRequired(_) => S::MissingContentLength,
            Error::RangeNotSatisfiable { .. } => S::InvalidRange,
            Error::Unauthorized(_) | Error::Forbidden(_) => S::AccessDenied,
            Error::NotImplemented(_) => S::NotImplemented,
            Error::Conflict(_) => S::OperationAborted,
            Error::BadDigest { .. } => S::BadDigest,
            Error::ClientBody(m) if m.contains("Signature") => S::SignatureDoesNotMatch,
            Error::ClientBody(_) => S::IncompleteBody,
            Error::Source(_) => S::InternalError,
            Error::Io(_) => S::IncompleteBody,
        };
        s3s::S3Error::with_message(code, self.to_string())
    }
}

impl Error {
    /// For a write whose body came from the cluster itself: a failure to read it is not the
    /// client's.
    pub fn into_source_error(self) -> Error {
        match self {
            Error::ClientBody(m) => Error::Source(m),
            other => other,
        }
    }
}

impl From<Error> for s3s::S3Error {
    fn from(e: Error) -> Self {
        e.to_s3()
    }
}
