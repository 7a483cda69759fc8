//! Labels over HTTP: which language a request asks for (a `labels` value in the
//! body, else `Accept-Language`) and a JSON answer labelled in it, with
//! `Content-Language`. The labels themselves are in [`crate::labels`].

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::problem::{Problem, ProblemKind};
use crate::labels::{Lang, label_answer};

/// The language an answer is asked for in: `labels` in the body (`zh-CN`, `en`),
/// else `Accept-Language`, else none (codes only). An unknown `labels` is a 400.
pub(crate) fn requested(
    labels: Option<&str>,
    headers: &HeaderMap,
) -> Result<Option<Lang>, Problem> {
    if let Some(tag) = labels {
        return Lang::parse(tag).map(Some).ok_or_else(|| {
            Problem::new(
                ProblemKind::InvalidRequest,
                "`labels` is a language the gateway writes labels in: zh-CN or en.",
            )
            .with("at", "labels")
        });
    }
    Ok(headers
        .get(axum::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Lang::from_accept_language))
}

/// The JSON answer, labelled in `lang` when one was asked for.
pub(crate) fn respond<T: Serialize>(answer: &T, lang: Option<Lang>) -> Response {
    let Some(lang) = lang else {
        return axum::Json(answer).into_response();
    };
    match serde_json::to_value(answer) {
        Ok(mut value) => {
            label_answer(&mut value, lang);
            let mut response = axum::Json(value).into_response();
            if let Ok(tag) = axum::http::HeaderValue::from_str(lang.tag()) {
                response
                    .headers_mut()
                    .insert(axum::http::header::CONTENT_LANGUAGE, tag);
            }
            response
        }
        Err(_) => axum::Json(answer).into_response(),
    }
}
