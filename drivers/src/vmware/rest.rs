//! A client of VMware Workstation's REST API (`vmrest`): HTTP Basic auth, the vmrest media
//! type in `Accept` and `Content-Type`, power operations sent as raw strings (a JSON body is
//! rejected with Code 100), and errors `{"Code": n, "Message": "…"}` read case-insensitively
//! (vmrest answers `Code`/`Message`, its documentation shows `code`/`message`).

use serde_json::{json, Value};
use std::time::Duration;

/// vmrest's media type, required in `Accept` and in `Content-Type` of every body.
pub const MEDIA_TYPE: &str = "application/vnd.vmware.vmw.rest-v1+json";

/// A failed vmrest request.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// vmrest could not be reached (not running, wrong port, TLS).
    #[error("vmrest at {url}: {what} failed: {source}")]
    Transport {
        /// The vmrest base URL.
        url: String,
        /// The request, e.g. `GET /vms`.
        what: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// HTTP 401: the username or password is not the one vmrest was configured with.
    #[error("vmrest at {url} refused the credentials (HTTP 401) for {what}: set OSIMAGER_VMREST_USER and OSIMAGER_VMREST_PASSWORD to the credentials `vmrest -C` configured, or unset OSIMAGER_VMREST_URL to let osimager run its own vmrest")]
    Unauthorized {
        /// The vmrest base URL.
        url: String,
        /// The request, e.g. `GET /vms`.
        what: String,
    },
    /// vmrest answered with an error body.
    #[error("vmrest {what}: HTTP {status}{}: {message}", code.map(|c| format!(", Code {c}")).unwrap_or_default())]
    Api {
        /// The request, e.g. `PUT /vms/{id}/power`.
        what: String,
        /// The HTTP status.
        status: u16,
        /// vmrest's `Code`, when the body has one.
        code: Option<i64>,
        /// vmrest's `Message`, or the raw body.
        message: String,
    },
    /// A success status with a body that is not what the API documents.
    #[error("vmrest {what}: unexpected answer {body}")]
    Unexpected {
        /// The request, e.g. `POST /vms/registration`.
        what: String,
        /// The body vmrest sent.
        body: String,
    },
}

impl RestError {
    /// vmrest's error code, when it sent one.
    pub fn code(&self) -> Option<i64> {
        match self {
            RestError::Api { code, .. } => *code,
            _ => None,
        }
    }

    /// The HTTP status of the failed request, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            RestError::Api { status, .. } => Some(*status),
            RestError::Unauthorized { .. } => Some(401),
            _ => None,
        }
    }
}

/// `{"Code": …, "Message": …}` with keys in any case; the raw body when it is not JSON.
pub fn parse_error(body: &str) -> (Option<i64>, String) {
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(body) else {
        let t = body.trim();
        return (
            None,
            if t.is_empty() {
                "(no body)".into()
            } else {
                t.to_string()
            },
        );
    };
    let get = |name: &str| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    let code = get("code").and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()));
    let message = get("message")
        .map(|v| {
            v.as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string())
        })
        .unwrap_or_else(|| body.trim().to_string());
    (code, message)
}

/// One registered VM (`GET /vms`, `POST /vms/registration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmEntry {
    /// vmrest's id of the VM (used in `/vms/{id}/…` paths).
    pub id: String,
    /// The VM's `.vmx` path.
    pub path: String,
}

fn entry(v: &Value) -> Option<VmEntry> {
    Some(VmEntry {
        id: v.get("id")?.as_str()?.to_string(),
        path: v.get("path")?.as_str()?.to_string(),
    })
}

/// A vmrest endpoint with its credentials. The password is never shown (Debug hides it).
#[derive(Clone)]
pub struct Vmrest {
    client: reqwest::Client,
    /// Base URL ending in `/api`.
    base: String,
    user: String,
    password: String,
}

impl std::fmt::Debug for Vmrest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vmrest")
            .field("base", &self.base)
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

enum Body<'a> {
    None,
    Json(Value),
    Raw(&'a str),
}

impl Vmrest {
    /// `url` is vmrest's API root (`http://127.0.0.1:8697/api`; a URL without `/api` gets it).
    pub fn new(url: &str, user: &str, password: &str) -> Vmrest {
        let mut base = url.trim_end_matches('/').to_string();
        if !base.ends_with("/api") {
            base.push_str("/api");
        }
        // reqwest is built without a TLS provider of its own (as in the main crate): install
        // ring's, as every HTTPS client of osimager does (a second install is a no-op).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Vmrest {
            client,
            base,
            user: user.to_string(),
            password: password.to_string(),
        }
    }

    /// The base URL requests go to.
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Body<'_>,
        what: &str,
    ) -> Result<(u16, String), RestError> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .client
            .request(method, &url)
            .basic_auth(&self.user, Some(&self.password))
            .header(reqwest::header::ACCEPT, MEDIA_TYPE);
        match body {
            Body::None => {}
            Body::Json(v) => {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, MEDIA_TYPE)
                    .body(v.to_string());
            }
            Body::Raw(s) => {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, MEDIA_TYPE)
                    .body(s.to_string());
            }
        }
        let transport = |source| RestError::Transport {
            url: self.base.clone(),
            what: what.to_string(),
            source,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(transport)?;
        if status == 401 {
            return Err(RestError::Unauthorized {
                url: self.base.clone(),
                what: what.to_string(),
            });
        }
        if status >= 300 {
            let (code, message) = parse_error(&text);
            return Err(RestError::Api {
                what: what.to_string(),
                status,
                code,
                message,
            });
        }
        Ok((status, text))
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Body<'_>,
        what: &str,
    ) -> Result<Value, RestError> {
        let (_, text) = self.call(method, path, body, what).await?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|_| RestError::Unexpected {
            what: what.to_string(),
            body: text.chars().take(300).collect(),
        })
    }

    /// `GET /vms`: the registered VMs.
    pub async fn list_vms(&self) -> Result<Vec<VmEntry>, RestError> {
        let what = "GET /vms";
        let v = self
            .json(reqwest::Method::GET, "/vms", Body::None, what)
            .await?;
        v.as_array()
            .map(|a| a.iter().filter_map(entry).collect())
            .ok_or_else(|| RestError::Unexpected {
                what: what.into(),
                body: v.to_string(),
            })
    }

    /// `POST /vms/registration {name, path}`: register the VM whose `.vmx` is `vmx`
    /// (vmrest requires the path of the .vmx file itself, not its directory).
    pub async fn register(&self, name: &str, vmx: &str) -> Result<VmEntry, RestError> {
        let what = "POST /vms/registration";
        let v = self
            .json(
                reqwest::Method::POST,
                "/vms/registration",
                Body::Json(json!({"name": name, "path": vmx})),
                what,
            )
            .await?;
        entry(&v).ok_or_else(|| RestError::Unexpected {
            what: what.into(),
            body: v.to_string(),
        })
    }

    /// `GET /vms/{id}/power` → `poweredOn`, `poweredOff`, `suspended`, ….
    pub async fn power_state(&self, id: &str) -> Result<String, RestError> {
        let what = format!("GET /vms/{id}/power");
        let v = self
            .json(
                reqwest::Method::GET,
                &format!("/vms/{id}/power"),
                Body::None,
                &what,
            )
            .await?;
        v.get("power_state")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| RestError::Unexpected {
                what,
                body: v.to_string(),
            })
    }

    /// `PUT /vms/{id}/power` with the raw body `op` (`on`, `off`, `shutdown`, `suspend`,
    /// `pause`, `unpause`); returns the new power state.
    pub async fn set_power(&self, id: &str, op: &str) -> Result<String, RestError> {
        let what = format!("PUT /vms/{id}/power {op}");
        let v = self
            .json(
                reqwest::Method::PUT,
                &format!("/vms/{id}/power"),
                Body::Raw(op),
                &what,
            )
            .await?;
        Ok(v.get("power_state")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    /// `GET /vms/{id}/ip` (needs VMware Tools in the guest).
    pub async fn guest_ip(&self, id: &str) -> Result<String, RestError> {
        let what = format!("GET /vms/{id}/ip");
        let v = self
            .json(
                reqwest::Method::GET,
                &format!("/vms/{id}/ip"),
                Body::None,
                &what,
            )
            .await?;
        v.get("ip")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| RestError::Unexpected {
                what,
                body: v.to_string(),
            })
    }

    /// `DELETE /vms/{id}`: unregister the VM and delete its files.
    pub async fn delete(&self, id: &str) -> Result<(), RestError> {
        let what = format!("DELETE /vms/{id}");
        self.call(
            reqwest::Method::DELETE,
            &format!("/vms/{id}"),
            Body::None,
            &what,
        )
        .await
        .map(|_| ())
    }

    /// Send `body` as JSON to `PUT /vms/{id}/power` — only for tests of the API contract (a
    /// JSON power body is an error).
    #[doc(hidden)]
    pub async fn put_power_json(&self, id: &str, body: Value) -> Result<String, RestError> {
        let what = format!("PUT /vms/{id}/power (JSON)");
        self.json(
            reqwest::Method::PUT,
            &format!("/vms/{id}/power"),
            Body::Json(body),
            &what,
        )
        .await
        .map(|v| v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_parse_in_any_case() {
        let pretty =
            "{\n  \"Code\": 100,\n  \"Message\": \"One of the parameters was invalid: path\"\n}";
        assert_eq!(
            parse_error(pretty),
            (Some(100), "One of the parameters was invalid: path".into())
        );
        assert_eq!(
            parse_error(r#"{"code": 106, "message": "locked"}"#),
            (Some(106), "locked".into())
        );
        assert_eq!(
            parse_error(r#"{"CODE": "7", "MESSAGE": "x"}"#),
            (Some(7), "x".into())
        );
        assert_eq!(parse_error("Not Found\n"), (None, "Not Found".into()));
        assert_eq!(parse_error(""), (None, "(no body)".into()));
    }

    #[test]
    fn base_url_gets_api_and_debug_hides_the_password() {
        let v = Vmrest::new("http://127.0.0.1:8697/", "u", "hunter2");
        assert_eq!(v.url(), "http://127.0.0.1:8697/api");
        assert!(!format!("{v:?}").contains("hunter2"));
        assert_eq!(
            Vmrest::new("http://h:1/api", "u", "p").url(),
            "http://h:1/api"
        );
    }
}
