//! The HTTP side of `computenet serve`: `/metrics` (Prometheus), `/healthz`, `/readyz`,
//! `/api/pool` (the latest [`PoolObservation`] as JSON, with the [`UsageObservation`] as
//! `usage`) and `/`, a self-contained live dashboard that polls `/api/pool`.
//!
//! `/api/pool` names every tenant's jobs, so with [`WebAccess::Kubernetes`] it needs a
//! bearer token whose user the hub allows to `get` the non-resource URL
//! `/computenet/api/pool` (see [`crate::webauth`]). The
//! dashboard page itself carries no data: it sends the token the user gives it. Probes and
//! `/metrics` stay open for kubelet and Prometheus; metrics name no jobs unless enabled.

use crate::metrics::{self, Metrics};
use crate::observe::{PoolObservation, UsageObservation};
use crate::webauth::{Authenticator, Verdict};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
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

/// Who may read the pool's data (`/api/pool`).
#[derive(Debug, Clone)]
pub enum WebAccess {
    /// Anyone who reaches the port: only for a loopback listen address.
    Open,
    /// Bearer tokens reviewed by the hub (TokenReview, then SubjectAccessReview).
    Kubernetes(Arc<Authenticator>),
}

/// What the HTTP server shows and to whom.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Pending jobs per queue that get a dashboard row (and, with `job_labels`, a series).
    pub top_n: usize,
    /// Whether `/metrics` may carry job names (`computenet_pending_job_position`).
    pub job_labels: bool,
    pub access: WebAccess,
}

/// What the HTTP server shows, shared with the scheduling loop.
#[derive(Debug, Clone)]
pub struct WebState {
    observation: Arc<RwLock<PoolObservation>>,
    usage: Arc<RwLock<UsageObservation>>,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    top_n: usize,
    access: WebAccess,
}

impl WebState {
    /// Empty state.
    pub fn new(config: WebConfig) -> crate::Result<Self> {
        Ok(Self {
            observation: Arc::default(),
            usage: Arc::default(),
            metrics: Arc::new(Metrics::new(config.job_labels)?),
            ready: Arc::default(),
            top_n: config.top_n,
            access: config.access,
        })
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

    /// Replaces the usage panel's observation.
    pub fn publish_usage(&self, usage: UsageObservation) {
        *self.usage.write().unwrap_or_else(|e| e.into_inner()) = usage;
    }

    /// The latest usage observation.
    pub fn usage(&self) -> UsageObservation {
        self.usage.read().unwrap_or_else(|e| e.into_inner()).clone()
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

/// `None` when the request's user may `get` the non-resource URL `path`, else the refusal.
async fn refusal(state: &WebState, headers: &HeaderMap, path: &str) -> Option<Response> {
    let WebAccess::Kubernetes(auth) = &state.access else {
        return None;
    };
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let text = |code: StatusCode, body: &'static str| {
        let mut response = (code, body).into_response();
        if code == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        Some(response)
    };
    match auth.check(authorization, path).await {
        Ok(Verdict::Allowed { .. }) => None,
        Ok(Verdict::Unauthenticated) => text(
            StatusCode::UNAUTHORIZED,
            "401 Unauthorized: send Authorization: Bearer <token> (e.g. from `kubectl create token`)\n",
        ),
        Ok(Verdict::Forbidden { user }) => {
            tracing::debug!(%user, path, "refused: no RBAC grant to get this URL");
            text(StatusCode::FORBIDDEN, "403 Forbidden: this user may not get the non-resource URL /computenet/api/pool (see the ClusterRole computenet-dashboard-viewer)\n")
        }
        Err(e) => {
            tracing::warn!(error = %e, path, "cannot review a token with the hub");
            text(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable: cannot check the token with the hub\n")
        }
    }
}

/// The body of `/api/pool`: the observation's fields, and `usage`.
#[derive(serde::Serialize)]
struct PoolBody<'a> {
    #[serde(flatten)]
    pool: &'a PoolObservation,
    usage: &'a UsageObservation,
}

async fn pool(State(state): State<WebState>, headers: HeaderMap) -> Response {
    if let Some(refused) = refusal(&state, &headers, crate::webauth::POOL_RBAC_URL).await {
        return refused;
    }
    let body = {
        let pool = state.observation.read().unwrap_or_else(|e| e.into_inner());
        let usage = state.usage.read().unwrap_or_else(|e| e.into_inner());
        serde_json::to_vec(&PoolBody { pool: &pool, usage: &usage })
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

    fn open() -> WebState {
        WebState::new(WebConfig { top_n: 10, job_labels: true, access: WebAccess::Open }).expect("web state")
    }

    fn authenticated() -> WebState {
        let auth = Authenticator::new(
            Box::<crate::webauth::tests::FakeReviewer>::default(),
            crate::webauth::CachePolicy::default(),
        );
        WebState::new(WebConfig { top_n: 10, job_labels: false, access: WebAccess::Kubernetes(Arc::new(auth)) })
            .expect("web state")
    }

    async fn get(state: &WebState, path: &str) -> (StatusCode, Option<String>, String) {
        get_as(state, path, None).await
    }

    async fn get_as(state: &WebState, path: &str, token: Option<&str>) -> (StatusCode, Option<String>, String) {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = router(state.clone()).oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
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
        let state = open();
        assert_eq!(get(&state, "/healthz").await.0, StatusCode::OK);
        assert_eq!(get(&state, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        state.set_ready(true);
        assert_eq!(get(&state, "/readyz").await.0, StatusCode::OK);
        assert_eq!(get(&state, "/nope").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn metrics_in_text_format() {
        let state = open();
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
        let state = open();
        state.publish(observation());
        let (status, content_type, body) = get(&state, "/api/pool").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["generatedAt"], 42);
        assert_eq!(v["queues"][0]["name"], "research");
        assert_eq!(state.observation().generated_at, 42);
        assert_eq!(v["usage"]["generatedAt"], 0, "no usage observation yet: an empty one");
        assert_eq!(v["usage"]["queues"], serde_json::json!([]));
        state.publish_usage(crate::observe::UsageObservation {
            generated_at: 43,
            month: crate::observe::UsageFigures { gpu_hours: 2.5, ..Default::default() },
            ..Default::default()
        });
        let v: serde_json::Value = serde_json::from_str(&get(&state, "/api/pool").await.2).unwrap();
        assert_eq!((v["generatedAt"].as_u64(), v["usage"]["generatedAt"].as_u64()), (Some(42), Some(43)));
        assert_eq!(v["usage"]["month"]["gpuHours"], 2.5);
        assert_eq!(state.usage().generated_at, 43);
    }

    #[tokio::test]
    async fn dashboard_is_self_contained() {
        let (status, content_type, body) = get(&open(), "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.unwrap().starts_with("text/html"));
        assert!(body.contains("/api/pool"));
        // Offline: nothing is loaded from elsewhere.
        for external in ["src=\"http", "href=\"http", "url(http", "<script src", "<link", "@import"] {
            assert!(!body.contains(external), "external reference in the dashboard: {external}");
        }
    }

    #[tokio::test]
    async fn pool_needs_a_token_whose_user_may_get_it() {
        let state = authenticated();
        state.publish(observation());
        let (status, _, body) = get(&state, "/api/pool").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(!body.contains("research"), "{body}");
        let response = router(state.clone()).oneshot(Request::get("/api/pool").body(Body::empty()).unwrap()).await;
        assert_eq!(response.unwrap().headers().get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
        assert_eq!(get_as(&state, "/api/pool", Some("invalid")).await.0, StatusCode::UNAUTHORIZED);
        let (status, _, body) = get_as(&state, "/api/pool", Some("outsider")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(!body.contains("research"), "{body}");
        let (status, _, body) = get_as(&state, "/api/pool", Some("viewer")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("research"), "{body}");
        assert_eq!(get_as(&state, "/api/pool", Some("down")).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn probes_metrics_and_the_page_shell_stay_open() {
        let state = authenticated();
        state.publish(observation());
        state.set_ready(true);
        for path in ["/healthz", "/readyz", "/metrics", "/"] {
            assert_eq!(get(&state, path).await.0, StatusCode::OK, "{path}");
        }
        // The shell carries no pool data.
        let (_, _, page) = get(&state, "/").await;
        assert!(!page.contains("research"));
    }
}
