//! A schema registry inside the demo process, so that the demo's Avro table runs with
//! one command like the rest. It answers the two calls of Confluent's REST API that
//! ktable makes (`/schemas/ids/{id}` and `/subjects/{subject}/versions/latest`, also
//! `/versions/1`) from a fixed list of schemas, over hyper's HTTP/1 as the operations
//! endpoint does. Loopback only; a real deployment points ktable at its own registry.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// One registered schema: version 1 of `subject`, with registry id `id`.
#[derive(Debug, Clone)]
pub struct DemoSchema {
    /// The subject (`<topic>-value` or `<topic>-key`).
    pub subject: String,
    /// The schema id records carry in their framing.
    pub id: u32,
    /// The Avro schema, as JSON text.
    pub text: String,
}

/// The demo's registry, serving until the process ends.
#[derive(Debug)]
pub struct DemoRegistry {
    address: SocketAddr,
}

impl DemoRegistry {
    /// Binds a free loopback port and serves `schemas` on the current Tokio runtime.
    pub async fn start(schemas: Vec<DemoSchema>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let schemas: Arc<[DemoSchema]> = schemas.into();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let schemas = Arc::clone(&schemas);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let response = answer(&schemas, &request);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        tracing::info!(%address, "demo schema registry serving");
        Ok(Self { address })
    }

    /// The URL to configure as the schema registry.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

fn answer(schemas: &[DemoSchema], request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let found = if let Some(id) = path.strip_prefix("/schemas/ids/") {
        let id: Option<u32> = id.parse().ok();
        schemas
            .iter()
            .find(|s| Some(s.id) == id)
            .map(|s| json!({"schema": s.text}))
    } else {
        let subject_version = path
            .strip_prefix("/subjects/")
            .and_then(|rest| rest.split_once("/versions/"));
        subject_version.and_then(|(subject, version)| {
            let schema = schemas.iter().find(|s| s.subject == subject)?;
            matches!(version, "latest" | "1").then(|| {
                json!({"subject": schema.subject, "version": 1, "id": schema.id, "schema": schema.text})
            })
        })
    };
    let (status, body) = match found {
        Some(body) => (StatusCode::OK, body),
        None => (
            StatusCode::NOT_FOUND,
            json!({"error_code": 40403, "message": format!("{path} not found")}),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.schemaregistry.v1+json"),
    );
    response
}
