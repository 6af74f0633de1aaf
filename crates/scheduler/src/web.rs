//! The HTTP side of `computenet serve`: `/metrics` (Prometheus), `/healthz`, `/readyz`,
//! `/api/pool` (the latest [`PoolObservation`] as JSON) and `/`, a self-contained live
//! dashboard that polls `/api/pool`.

use crate::metrics::{self, Metrics};
use crate::observe::PoolObservation;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The dashboard page (no external scripts or styles).
const DASHBOARD: &str = include_str!("../assets/dashboard.html");

/// What the HTTP server shows, shared with the scheduling loop.
#[derive(Debug, Clone)]
pub struct WebState {
    observation: Arc<RwLock<PoolObservation>>,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    top_n: usize,
}

impl WebState {
    /// Empty state; `top_n` pending jobs per queue get a position series and a dashboard row.
    pub fn new(top_n: usize) -> crate::Result<Self> {
        Ok(Self { observation: Arc::default(), metrics: Arc::new(Metrics::new()?), ready: Arc::default(), top_n })
    }

    /// How many pending jobs per queue to show.
    pub fn top_n(&self) -> usize {
        self.top_n
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Replaces the observation and the gauges derived from it.
    pub fn publish(&self, observation: PoolObservation) {
        self.metrics.update(&observation);
        *self.observation.write().unwrap_or_else(|e| e.into_inner()) = observation;
    }

    /// The latest observation.
    pub fn observation(&self) -> PoolObservation {
        self.observation.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `/readyz` answers 200.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD)
}

async fn metrics_text(State(state): State<WebState>) -> Response {
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], state.metrics.encode()).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<WebState>) -> Response {
    if state.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: caches are syncing\n").into_response()
    }
}

async fn pool(State(state): State<WebState>) -> Response {
    let body = {
        let o = state.observation.read().unwrap_or_else(|e| e.into_inner());
        serde_json::to_vec(&*o)
    };
    match body {
        Ok(body) => {
            ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The routes.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/pool", get(pool))
        .with_state(state)
}

/// Serves the routes until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: WebState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz, /readyz, /api/pool and the dashboard");
    }
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

/// A running HTTP server (see [`start`]).
#[derive(Debug)]
pub struct Server {
    state: WebState,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds `addr` (so a taken port fails right away) and serves in the background.
pub async fn start(addr: SocketAddr, state: WebState) -> std::io::Result<Server> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    Ok(Server { state, stop, task })
}

/// [`start`], or `None` with an error logged: a taken port must not stop scheduling (the
/// probes then fail, which is what surfaces the problem on Kubernetes).
pub async fn try_start(addr: SocketAddr, state: WebState) -> Option<Server> {
    match start(addr, state).await {
        Ok(server) => Some(server),
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen; serving no metrics, probes or dashboard (see --listen)");
            None
        }
    }
}

impl Server {
    /// What it serves; give it to the scheduling loop ([`crate::ServeConfig::web`]).
    pub fn state(&self) -> &WebState {
        &self.state
    }

    /// Stops accepting connections and waits up to `grace` for requests in flight.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(());
        match tokio::time::timeout(grace, self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server"),
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task"),
            Err(_) => tracing::warn!(?grace, "HTTP server still had requests in flight; stopped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(state: &WebState, path: &str) -> (StatusCode, Option<String>, String) {
        let response = router(state.clone()).oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = to_bytes(response.into_body(), 1 << 24).await.unwrap();
        (status, content_type, String::from_utf8(body.to_vec()).unwrap())
    }

    fn observation() -> PoolObservation {
        PoolObservation {
            generated_at: 42,
            queues: vec![crate::observe::QueueObservation {
                name: "research".into(),
                cohort: None,
                pending: 1,
                admitted: 0,
                running: 0,
                accelerators_used: 0,
                accelerators_quota: None,
                top_pending: Vec::new(),
            }],
            ..PoolObservation::default()
        }
    }

    #[tokio::test]
    async fn health_and_readiness() {
        let state = WebState::new(10).expect("web state");
        assert_eq!(get(&state, "/healthz").await.0, StatusCode::OK);
        assert_eq!(get(&state, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        state.set_ready(true);
        assert_eq!(get(&state, "/readyz").await.0, StatusCode::OK);
        assert_eq!(get(&state, "/nope").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn metrics_in_text_format() {
        let state = WebState::new(10).expect("web state");
        state.publish(observation());
        state.metrics().admitted("research", "ai-1");
        let (status, content_type, body) = get(&state, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.unwrap().starts_with("text/plain; version=0.0.4"));
        assert!(body.contains(r#"computenet_queue_jobs{queue="research",state="pending"} 1"#), "{body}");
        assert!(body.contains(r#"computenet_admissions_total{cluster="ai-1",queue="research"} 1"#), "{body}");
    }

    #[tokio::test]
    async fn pool_as_json() {
        let state = WebState::new(10).expect("web state");
        state.publish(observation());
        let (status, content_type, body) = get(&state, "/api/pool").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["generatedAt"], 42);
        assert_eq!(v["queues"][0]["name"], "research");
        assert_eq!(state.observation().generated_at, 42);
    }

    #[tokio::test]
    async fn dashboard_is_self_contained() {
        let (status, content_type, body) = get(&WebState::new(10).expect("web state"), "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.unwrap().starts_with("text/html"));
        assert!(body.contains("/api/pool"));
        // Offline: nothing is loaded from elsewhere.
        for external in ["src=\"http", "href=\"http", "url(http", "<script src", "<link", "@import"] {
            assert!(!body.contains(external), "external reference in the dashboard: {external}");
        }
    }
}
