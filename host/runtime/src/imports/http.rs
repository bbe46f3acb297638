use std::time::Duration;

use crate::bindings::http::{Host, HttpError, Method, Request, Response};
use crate::state::CallState;

/// Largest request body a plugin may send.
const MAX_REQUEST_BODY_BYTES: usize = 1 << 20;

impl Host for CallState {
    #[tracing::instrument(name = "host_import", level = "info", skip_all, fields(import = "http.send", method = ?request.method))]
    async fn send(&mut self, request: Request) -> Result<Response, HttpError> {
        let url = reqwest::Url::parse(&request.url)
            .map_err(|e| HttpError::InvalidRequest(format!("bad url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::InvalidRequest(format!(
                "scheme {} is not http(s)",
                url.scheme()
            )));
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(0);
        if !self.plugin.allowed_hosts.permits(&host, port) {
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
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self
            .plugin
            .services
            .http
            .request(method, url)
            .timeout(timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        for (name, value) in (self.plugin.services.outgoing_headers)() {
            if !request
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                builder = builder.header(name, value);
            }
        }
        builder = builder
            .header("x-request-id", &*self.request_id)
            .body(request.body);

        let max = limits.http_max_response_bytes;
        let fetch = async {
            let mut response = builder.send().await.map_err(transport_error)?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            if response
                .content_length()
                .is_some_and(|len| len as usize > max)
            {
                return Err(HttpError::TooLarge);
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
                if body.len() + chunk.len() > max {
                    return Err(HttpError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Response {
                status,
                headers,
                body,
            })
        };
        // The client's timeout covers each phase; this bounds the whole exchange.
        tokio::time::timeout(timeout, fetch)
            .await
            .unwrap_or(Err(HttpError::Timeout))
    }
}

/// What a failed exchange tells the plugin: its kind, never the URL or the
/// resolver's and TLS library's words (a plugin may pass them on to a
/// merchant; security review, finding 13). The whole error is logged for
/// the operator.
fn transport_error(e: reqwest::Error) -> HttpError {
    tracing::warn!(error = %e, "plugin HTTP request failed");
    if e.is_timeout() {
        HttpError::Timeout
    } else if e.is_builder() {
        HttpError::InvalidRequest("the request could not be built".into())
    } else if e.is_connect() {
        HttpError::Transport("could not connect to the host".into())
    } else if e.is_body() || e.is_decode() {
        HttpError::Transport("the response could not be read".into())
    } else {
        HttpError::Transport("the request failed".into())
    }
}
