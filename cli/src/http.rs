//! The HTTP client the agent and the client commands share: JSON in and out, the server's
//! error body turned into a message that says what to do, and a distinction between "the
//! server said no" and "the server is not there".

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No answer (connection refused, timeout, DNS): retry later.
    #[error(
        "cannot reach the scry server at {url}: {detail} (is `scry server` running there? set --server or SCRY_SERVER)"
    )]
    Unreachable { url: String, detail: String },
    /// The server answered with an error.
    #[error("the server refused: {error}: {detail} (HTTP {status})")]
    Refused {
        status: u16,
        error: String,
        detail: String,
    },
    /// The answer was not what the protocol says.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client for `base` (`http://127.0.0.1:7070`); requests time out after `timeout`
    /// (long polls ask for less than that).
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Client {
        Client::with_ca(base, token, timeout, None).expect("no CA file to read")
    }

    /// Like [`Client::new`], trusting only the CA certificates in the PEM file `ca` for
    /// HTTPS (a server started with `--tls-cert`); None: the usual web roots.
    pub fn with_ca(
        base: &str,
        token: Option<String>,
        timeout: Duration,
        ca: Option<&std::path::Path>,
    ) -> anyhow::Result<Client> {
        let mut builder = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false);
        if let Some(path) = ca {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("cannot read the CA file {}: {e}", path.display()))?;
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                anyhow::bail!(
                    "{} holds no PEM certificate: give --ca the CA's certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                );
            }
            builder = builder.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
                    .build(),
            );
        }
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent: builder.build().into(),
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn finish<T: DeserializeOwned>(
        &self,
        url: &str,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, HttpError> {
        let mut resp = r.map_err(|e| HttpError::Unreachable {
            url: url.to_string(),
            detail: e.to_string(),
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| HttpError::Unreachable {
                url: url.to_string(),
                detail: e.to_string(),
            })?;
        if !(200..300).contains(&status) {
            let (error, detail) = match serde_json::from_str::<scry_server::api::ApiError>(&text) {
                Ok(e) => (e.error, e.detail),
                Err(_) => (format!("HTTP {status}"), text.chars().take(200).collect()),
            };
            return Err(HttpError::Refused {
                status,
                error,
                detail,
            });
        }
        serde_json::from_str(&text).map_err(|e| {
            HttpError::Protocol(format!(
                "{e} in {:?}",
                text.chars().take(200).collect::<String>()
            ))
        })
    }

    /// GET `path` as JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, HttpError> {
        let url = self.url(path);
        let mut req = self.agent.get(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        self.finish(&url, req.call())
    }

    /// POST `body` as JSON to `path`.
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, HttpError> {
        let url = self.url(path);
        let mut req = self.agent.post(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        self.finish(&url, req.send_json(body))
    }

    /// DELETE `path`.
    pub fn delete(&self, path: &str) -> Result<serde_json::Value, HttpError> {
        let url = self.url(path);
        let mut req = self.agent.delete(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        self.finish(&url, req.call())
    }
}
