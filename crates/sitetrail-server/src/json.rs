//! Body and query extractors whose rejections are sitetrail's error bodies.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::Unsupported(
                "send the body as Content-Type: application/json".into(),
            ));
        }
        let ApiBytes(bytes) = ApiBytes::from_request(req, state).await?;
        refuse_nul(&bytes)?;
        // Most bodies are well formed: read them without tracking the path, and read a
        // refused one again with axum's extractor for the message naming the field.
        if let Ok(v) = serde_json::from_slice(&bytes) {
            return Ok(ApiJson(v));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(from_rejection(rejection)),
        }
    }
}

/// `application/json`, or a `+json` type, as axum's own extractor accepts.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A NUL character (`\u0000` in JSON text) is refused in every field: PostgreSQL's text
/// cannot hold one, and no field has a use for it.
fn refuse_nul(json: &[u8]) -> Result<(), ApiError> {
    // `u0000` escapes a NUL where an odd number of backslashes stands before it (an even
    // number is escaped backslashes, then the letters). Found with a vectorized search: a
    // batch body is scanned once per request.
    let escaped = memchr::memmem::find_iter(json, b"u0000").any(|at| {
        let backslashes = json[..at].iter().rev().take_while(|&&b| b == b'\\').count();
        backslashes % 2 == 1
    });
    if escaped {
        return Err(ApiError::Invalid(
            "the body holds a NUL character (\\u0000), which no field accepts".into(),
        ));
    }
    Ok(())
}

fn from_rejection(r: JsonRejection) -> ApiError {
    let text = r.body_text();
    let detail = text
        .split_once(": ")
        .map_or(text.as_str(), |(_, rest)| rest)
        .to_owned();
    match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge("the request body is too large".into()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::Unsupported("send the body as Content-Type: application/json".into())
        }
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Invalid(detail),
        _ => ApiError::Malformed(format!("the body is not valid JSON: {detail}")),
    }
}

/// A raw body (read before it is parsed) whose rejections are sitetrail's error bodies.
pub struct ApiBytes(pub Bytes);

impl<S> FromRequest<S> for ApiBytes
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(|r: BytesRejection| match r.status() {
                StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::TooLarge("the request body is too large".into())
                }
                _ => ApiError::Malformed(format!("the body could not be read: {}", r.body_text())),
            })
    }
}

/// Query parameters whose rejection is a sitetrail error body.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        // The only way to send a NUL in a query string; no parameter accepts one.
        if parts
            .uri
            .query()
            .is_some_and(|q| q.to_ascii_lowercase().contains("%00"))
        {
            return Err(ApiError::Invalid(
                "the query string holds a NUL character (%00), which no parameter accepts".into(),
            ));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r| ApiError::Malformed(format!("bad query string: {}", r.body_text())))
    }
}

/// A body that may be empty or `null` (then `T::default()`) or JSON.
pub fn optional_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    refuse_nul(bytes)?;
    serde_json::from_slice::<Option<T>>(bytes)
        .map(Option::unwrap_or_default)
        .map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ApiError::Invalid(e.to_string()),
            _ => ApiError::Malformed(format!("the body is not valid JSON: {e}")),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_escaped_nul_is_a_nul() {
        assert!(refuse_nul(br#"{"a": "x\u0000"}"#).is_err());
        assert!(refuse_nul(br#"{"a\u0000": 1}"#).is_err());
        assert!(refuse_nul(br#"{"a": "\\\u0000"}"#).is_err());
        assert!(refuse_nul(br#"{"a": "\u00001"}"#).is_err());
        // A backslash, then the letters u0000.
        assert!(refuse_nul(br#"{"a": "\\u0000"}"#).is_ok());
        assert!(refuse_nul(br#"{"a": "\u0001 u0000"}"#).is_ok());
        assert!(refuse_nul(br#"{"a": "\\\\\u0000"}"#).is_err());
        assert!(refuse_nul(br#"\u0000"#).is_err());
        assert!(refuse_nul(br#"u0000"#).is_ok());
    }

    /// The byte-by-byte scan `refuse_nul` replaced.
    fn escapes_a_nul(json: &[u8]) -> bool {
        let mut backslashes = 0usize;
        for (i, &b) in json.iter().enumerate() {
            if b == b'\\' {
                backslashes += 1;
                continue;
            }
            if backslashes % 2 == 1 && b == b'u' && json.get(i + 1..i + 5) == Some(b"0000") {
                return true;
            }
            backslashes = 0;
        }
        false
    }

    proptest::proptest! {
        #[test]
        fn refuses_exactly_what_a_byte_by_byte_scan_refuses(text in r#"(\\|u|0000|0|a|")*"#) {
            proptest::prop_assert_eq!(
                refuse_nul(text.as_bytes()).is_err(),
                escapes_a_nul(text.as_bytes())
            );
        }
    }
}
