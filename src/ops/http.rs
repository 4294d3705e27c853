//! The operations endpoint's HTTP server: three fixed routes over hyper's HTTP/1
//! connection, no framework.
//!
//! Scrapers and probes send a GET every few seconds; nothing here needs routing
//! tables, middleware or HTTP/2, so hyper's own server (which axum would wrap
//! anyway, with tower besides) is the whole stack. What a scraper
//! cannot be trusted with is bounded: at most [`MAX_CONNECTIONS`] at once (more are
//! closed at accept), [`HEADER_TIMEOUT`] to send a request's head, and each
//! connection ends at shutdown.

use super::health::{self, Phase};
use super::metrics::{Metrics, CONTENT_TYPE};
use super::OpsError;
use crate::sql::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE as CONTENT_TYPE_HEADER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// HTTP connections served at once; Prometheus and a probe or two need a handful.
pub const MAX_CONNECTIONS: usize = 32;

/// How long a client may take to send a request's head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the routes answer from.
struct Routes {
    engine: Arc<Engine>,
    metrics: Metrics,
    /// Starting or shutting down: `/readyz` says so before looking at sources.
    phase: Option<watch::Receiver<Phase>>,
}

impl Routes {
    fn respond(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        match request.uri().path() {
            "/metrics" => match self.metrics.render() {
                Ok(body) => {
                    let mut response = text(StatusCode::OK, body);
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(CONTENT_TYPE));
                    response
                }
                Err(error) => {
                    tracing::error!(%error, "cannot encode the metrics");
                    text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "cannot encode the metrics\n".into(),
                    )
                }
            },
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/readyz" => {
                let phase = self.phase.as_ref().map_or(Phase::Serving, |p| *p.borrow());
                match phase {
                    Phase::Starting => {
                        let body = "starting: declaring sources\n".into();
                        return text(StatusCode::SERVICE_UNAVAILABLE, body);
                    }
                    Phase::ShuttingDown => {
                        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
                    }
                    Phase::Serving => {}
                }
                let not_ready = health::not_ready(&self.engine);
                let status = if not_ready.is_empty() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                text(status, health::readiness_text(&not_ready))
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: try /metrics, /healthz or /readyz\n".into(),
            ),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE_HEADER,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The operations endpoint, bound and not yet serving.
pub struct Endpoint {
    listener: TcpListener,
    address: SocketAddr,
    routes: Routes,
}

impl Endpoint {
    /// Binds `address`; [`serve`](Self::serve) answers with `metrics` and the
    /// readiness of `engine`'s sources.
    pub async fn bind(
        address: SocketAddr,
        engine: Arc<Engine>,
        metrics: Metrics,
    ) -> Result<Self, OpsError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|error| OpsError::Bind { address, error })?;
        let address = listener
            .local_addr()
            .map_err(|error| OpsError::Bind { address, error })?;
        Ok(Self {
            listener,
            address,
            routes: Routes {
                engine,
                metrics,
                phase: None,
            },
        })
    }

    /// `/readyz` answers 503 while `phase` is [`Phase::Starting`] (the start-up SQL
    /// has not declared every source yet) or [`Phase::ShuttingDown`] (so load
    /// balancers stop sending queries while statements finish). Without it the
    /// process counts as serving.
    pub fn phase(mut self, phase: watch::Receiver<Phase>) -> Self {
        self.routes.phase = Some(phase);
        self
    }

    /// The address it listens on (the port chosen, when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` completes; then closes every connection.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let Endpoint {
            listener,
            address,
            routes,
        } = self;
        tracing::info!(%address, "serving /metrics, /healthz and /readyz");
        let routes = Arc::new(routes);
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::debug!(%peer, "HTTP connection closed: too many at once");
                continue;
            };
            let routes = Arc::clone(&routes);
            connections.spawn(async move {
                let _slot = slot;
                let service = hyper::service::service_fn(move |request| {
                    let response = routes.respond(&request);
                    async move { Ok::<_, Infallible>(response) }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
                if let Err(error) = served {
                    tracing::debug!(%peer, %error, "HTTP connection ended with an error");
                }
            });
        }
        drop(listener);
        connections.shutdown().await;
        tracing::debug!(%address, "operations endpoint stopped");
    }
}
