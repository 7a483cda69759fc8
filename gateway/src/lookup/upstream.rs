//! How a failed department call becomes a problem that tells the clerk the
//! department's system failed — naming the connector, never echoing its answer.

use connectors::FetchError;

use crate::problem::{Problem, ProblemKind};

pub(crate) fn fetch_problem(connector: &str, e: &FetchError) -> Problem {
    let problem = match e {
        FetchError::UnknownOperation => Problem::new(
            ProblemKind::UnknownOperation,
            "The connector has no operation with this name.",
        ),
        FetchError::NotFound => Problem::new(
            ProblemKind::SubjectNotFound,
            "The department has no record for this subject.",
        ),
        FetchError::Timeout => Problem::new(
            ProblemKind::UpstreamTimeout,
            "The department's system did not answer within the connector's time limit.",
        ),
        FetchError::Unavailable => Problem::new(
            ProblemKind::UpstreamUnavailable,
            "The department's system could not be reached.",
        ),
        FetchError::Status(status) => Problem::new(
            ProblemKind::UpstreamError,
            "The department's system answered with an HTTP error.",
        )
        .with("upstream_status", *status),
        FetchError::Rejected => Problem::new(
            ProblemKind::UpstreamError,
            "The department's system reported an error in its answer.",
        ),
        FetchError::Oversize { limit } => Problem::new(
            ProblemKind::UpstreamOversize,
            "The department's answer exceeded the connector's size limit and was discarded.",
        )
        .with("limit_bytes", *limit),
        FetchError::Malformed => Problem::new(
            ProblemKind::UpstreamMalformed,
            "The department's answer is not well-formed JSON in the declared envelope.",
        ),
        FetchError::Mapping(m) => Problem::new(
            ProblemKind::UpstreamSchemaViolation,
            "The department's record does not fit the connector's mapping; nothing of it was returned.",
        )
        .with("field", m.field.clone())
        .with("upstream_path", m.from.clone())
        .with("rule", m.rule.clone()),
    };
    problem.with("connector", connector)
}
