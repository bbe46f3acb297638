use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};

use crate::bindings::http::{Host, HttpError, Method, Request, Response};
use crate::outbound::OutboundRequest;
use crate::state::CallState;

/// Largest request body a plugin may send.
const MAX_REQUEST_BODY_BYTES: usize = 1 << 20;

impl Host for CallState {
    #[tracing::instrument(name = "host_import", level = "info", skip_all, fields(import = "http.send", method = ?request.method))]
    async fn send(&mut self, request: Request) -> Result<Response, HttpError> {
        let url = url::Url::parse(&request.url)
            .map_err(|e| HttpError::InvalidRequest(format!("bad url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::InvalidRequest(format!(
                "scheme {} is not http(s)",
                url.scheme()
            )));
        }
        // Credentials in a URL end up in logs and proxies' records; a
        // plugin sends them in a header.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(HttpError::InvalidRequest(
                "credentials in the url are not sent; use the authorization header".into(),
            ));
        }
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(0);
        if !self.plugin.allowed_hosts.permits(host, port) {
            let detail = format!("http to {host}:{port} is not in allowed_hosts");
            self.deny(detail);
            return Err(HttpError::Denied(format!("{host}:{port}")));
        }
        if request.body.len() > MAX_REQUEST_BODY_BYTES {
            return Err(HttpError::InvalidRequest("request body over 1 MiB".into()));
        }

        let limits = &self.plugin.limits;
        let timeout = request
            .timeout_ms
            .map_or(limits.http_timeout, |ms| Duration::from_millis(ms.into()))
            .min(limits.http_timeout);
        let outbound = self.outbound_request(&url, request)?;
        let max = limits.http_max_response_bytes;
        let client = &self.plugin.services.http;
        let fetch = async {
            let response = client.send(outbound).await.map_err(transport_error)?;
            let (head, body) = response.into_parts();
            let headers = (head.headers.iter())
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            Ok(Response {
                status: head.status.as_u16(),
                headers,
                body: read_capped(body, max).await?,
            })
        };
        // One deadline for the whole exchange: connecting, the TLS
        // handshake, the request, and the last byte of the answer.
        tokio::time::timeout(timeout, fetch)
            .await
            .unwrap_or(Err(HttpError::Timeout))
    }
}

impl CallState {
    /// The plugin's request as hyper sends it: its headers, then the
    /// host's (the trace context unless the plugin set it, the request id).
    fn outbound_request(
        &self,
        url: &url::Url,
        request: Request,
    ) -> Result<OutboundRequest, HttpError> {
        // The URL's own serialization, without the fragment, which is never
        // sent; the allow-list was checked on the same parse.
        let uri: http::Uri = url[..url::Position::AfterQuery]
            .parse()
            .map_err(|e| HttpError::InvalidRequest(format!("bad url: {e}")))?;
        let method = match request.method {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
            Method::Put => http::Method::PUT,
            Method::Patch => http::Method::PATCH,
            Method::Delete => http::Method::DELETE,
        };
        let mut headers = HeaderMap::with_capacity(request.headers.len() + 3);
        for (name, value) in &request.headers {
            let bad = || HttpError::InvalidRequest(format!("header {name:?} cannot be sent"));
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            let value = HeaderValue::from_str(value).map_err(|_| bad())?;
            headers.append(name, value);
        }
        for (name, value) in (self.plugin.services.outgoing_headers)() {
            if !headers.contains_key(name)
                && let Ok(value) = HeaderValue::from_str(&value)
            {
                headers.insert(name, value);
            }
        }
        if !headers.contains_key(http::header::ACCEPT) {
            headers.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
        }
        if let Ok(id) = HeaderValue::from_str(&self.request_id) {
            headers.append("x-request-id", id);
        }
        let mut outbound = http::Request::new(Full::new(Bytes::from(request.body)));
        *outbound.method_mut() = method;
        *outbound.uri_mut() = uri;
        *outbound.headers_mut() = headers;
        Ok(outbound)
    }
}

/// The answer's body, refused as soon as it is known to pass `max` bytes:
/// by its declared length before a byte is read, or as it arrives.
async fn read_capped(mut body: Incoming, max: usize) -> Result<Vec<u8>, HttpError> {
    let declared = body.size_hint().lower();
    if declared > max as u64 {
        return Err(HttpError::TooLarge);
    }
    let mut out = Vec::with_capacity(declared as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            tracing::warn!(error = %e, "reading a plugin's HTTP response failed");
            HttpError::Transport("the response could not be read".into())
        })?;
        if let Ok(chunk) = frame.into_data() {
            if out.len() + chunk.len() > max {
                return Err(HttpError::TooLarge);
            }
            out.extend_from_slice(&chunk);
        }
    }
    Ok(out)
}

/// What a failed exchange tells the plugin: its kind, never the URL or the
/// resolver's and TLS library's words (a plugin may pass them on to a
/// merchant; security review, finding 13). The whole error is logged for
/// the operator.
fn transport_error(e: hyper_util::client::legacy::Error) -> HttpError {
    tracing::warn!(error = ?e, "plugin HTTP request failed");
    if e.is_connect() {
        HttpError::Transport("could not connect to the host".into())
    } else {
        HttpError::Transport("the request failed".into())
    }
}
