//! The embedded HTTP server for the installer (answer files, `http_directory`,
//! `http_content`), bound where the driver says the guest reaches this host (QEMU user
//! networking: 127.0.0.1, seen by the guest as 10.0.2.2), in `http_port_min..max`.

use crate::engine::native::resources::{Http, Vm};
use crate::engine::native::runner::Runner;
use crate::engine::native::{NativeError, Settings};
use osimager_drivers::HttpEndpoint;
use osimager_events::LogSource;
use osimager_http::{HttpConfig, HttpServer, RequestLog};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) async fn run(
    r: &Runner,
    s: &Settings,
    vm: &Vm,
    temp: &Path,
    generated: &[PathBuf],
) -> Result<Option<HttpEndpoint>, NativeError> {
    let files: BTreeMap<String, PathBuf> = generated
        .iter()
        .filter_map(|f| {
            f.strip_prefix(temp)
                .ok()
                .map(|rel| (rel.to_string_lossy().into_owned(), f.clone()))
        })
        .collect();
    if s.http_directory.is_none() && s.http_content.is_empty() && files.is_empty() {
        r.skip("nothing to serve: no HTTP server");
        return Ok(None);
    }
    let host = vm
        .lock()
        .await
        .host_address()
        .await
        .map_err(NativeError::HostAddress)?;
    let events = r.events.clone();
    let on_request = RequestLog(Arc::new(move |line: &str| {
        events.emit(osimager_events::BuildEvent::Log {
            source: LogSource::Http,
            line: line.to_string(),
            detail: true,
        })
    }));
    let srv = HttpServer::start(HttpConfig {
        on_request: Some(on_request),
        bind_address: s.http_bind.unwrap_or(host.bind),
        port_min: s.http_ports.0,
        port_max: s.http_ports.1,
        directory: s.http_directory.clone(),
        content: s.http_content.clone(),
        files,
    })
    .await
    .map_err(NativeError::HttpServer)?;
    let url = format!("http://{}/", srv.local_addr());
    let port = srv.port();
    r.register(Arc::new(Http {
        server: tokio::sync::Mutex::new(Some(srv)),
        url: url.clone(),
    }));
    r.events.log(format!(
        "HTTP server: {url} (the guest uses http://{}:{port}/)",
        host.guest_ip
    ));
    Ok(Some(HttpEndpoint {
        ip: host.guest_ip,
        port,
    }))
}
