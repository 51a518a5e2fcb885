//! Prometheus metrics: request counts and latency histograms per route and status.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::state::AppState;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Successful policy reloads (`coffer_policy_reloads_total`).
    pub policy_reloads: IntCounter,
    /// Refused policy reloads: the set was invalid and the old one stayed active
    /// (`coffer_policy_reload_failures_total`).
    pub policy_reload_failures: IntCounter,
    rotations_started: IntCounterVec,
    rotations_succeeded: IntCounterVec,
    rotations_failed: IntCounterVec,
    rotation_step_failures: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers the metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "coffer_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["method", "route", "status"],
        )
        .expect("static metric definition is valid");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "coffer_http_request_duration_seconds",
                "HTTP request latency by route and status",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
            &["method", "route", "status"],
        )
        .expect("static metric definition is valid");
        registry
            .register(Box::new(requests.clone()))
            .expect("metric registered once");
        registry
            .register(Box::new(latency.clone()))
            .expect("metric registered once");
        let policy_reloads = IntCounter::new(
            "coffer_policy_reloads_total",
            "Policy reloads that swapped in a new set",
        )
        .expect("static metric definition is valid");
        let policy_reload_failures = IntCounter::new(
            "coffer_policy_reload_failures_total",
            "Policy reloads refused because the set was invalid (the old set stays active)",
        )
        .expect("static metric definition is valid");
        for counter in [&policy_reloads, &policy_reload_failures] {
            registry
                .register(Box::new(counter.clone()))
                .expect("metric registered once");
        }
        let by_plugin = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["plugin"])
                .expect("static metric definition is valid")
        };
        let rotations_started = by_plugin(
            "coffer_rotations_started_total",
            "Rotation runs started (or resumed), by plugin",
        );
        let rotations_succeeded = by_plugin(
            "coffer_rotations_succeeded_total",
            "Rotations that finished (AWSCURRENT moved), by plugin",
        );
        let rotations_failed = by_plugin(
            "coffer_rotations_failed_total",
            "Rotation runs that stopped at a failed step, by plugin",
        );
        let rotation_step_failures = IntCounterVec::new(
            Opts::new(
                "coffer_rotation_step_failures_total",
                "Failed rotation steps by plugin, step and error kind",
            ),
            &["plugin", "step", "kind"],
        )
        .expect("static metric definition is valid");
        for c in [
            &rotations_started,
            &rotations_succeeded,
            &rotations_failed,
            &rotation_step_failures,
        ] {
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
        }
        Metrics {
            registry,
            requests,
            latency,
            policy_reloads,
            policy_reload_failures,
            rotations_started,
            rotations_succeeded,
            rotations_failed,
            rotation_step_failures,
        }
    }

    /// Counts one rotation run.
    pub fn rotation_ran(&self, report: &coffer_core::rotation::RotationReport) {
        let plugin = report.plugin.as_str();
        self.rotations_started.with_label_values(&[plugin]).inc();
        match &report.outcome {
            coffer_core::rotation::RotationOutcome::Succeeded => {
                self.rotations_succeeded.with_label_values(&[plugin]).inc();
            }
            coffer_core::rotation::RotationOutcome::Failed { step, kind, .. } => {
                self.rotations_failed.with_label_values(&[plugin]).inc();
                self.rotation_step_failures
                    .with_label_values(&[plugin, step.as_str(), kind.as_str()])
                    .inc();
            }
        }
    }

    /// Records one request.
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(seconds);
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Middleware recording every request under its route template (never the raw path,
/// which would hold secret names and explode label cardinality).
pub async fn track(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let resp = next.run(req).await;
    state.metrics.observe(
        &method,
        &route,
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}
