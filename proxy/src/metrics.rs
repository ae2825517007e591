//! Data-plane metrics (Prometheus), registered into the process-wide registry.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::{Arc, OnceLock};

/// HTTP status class of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StatusClass {
    /// 1xx
    Informational,
    /// 2xx
    Success,
    /// 3xx
    Redirect,
    /// 4xx
    ClientError,
    /// 5xx
    ServerError,
    /// No response was sent (client went away).
    None,
}

impl StatusClass {
    /// The class of a status code (0 means no response).
    pub fn of(code: u16) -> StatusClass {
        match code {
            100..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirect,
            400..=499 => StatusClass::ClientError,
            500..=599 => StatusClass::ServerError,
            _ => StatusClass::None,
        }
    }
}

impl StatusClass {
    /// How many classes there are (`None` is the last).
    const COUNT: usize = StatusClass::None as usize + 1;

    fn as_str(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirect => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::None => "none",
        }
    }
}

impl EncodeLabelValue for StatusClass {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// The route label: `namespace/ingress` of the matched route (or `default-backend`), `none`
/// when nothing matched. Shares the router's string, so labelling a request allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteLabel(pub Option<Arc<str>>);

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0.as_deref().unwrap_or("none"), encoder)
    }
}

/// Labels of the per-route request counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route.
    pub route: RouteLabel,
    /// Status class of the response.
    pub code: StatusClass,
}

/// Labels of the upstream latency histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route.
    pub route: RouteLabel,
}

/// One route's request counter (per status class) and upstream latency histogram, resolved
/// from the families on first use and kept with the compiled route, so recording a request
/// needs no label hashing or map lookup. Series appear only once used.
#[derive(Debug, Default)]
pub struct RouteMetrics {
    requests: [OnceLock<Counter>; StatusClass::COUNT],
    latency: OnceLock<Histogram>,
}

/// The proxy's metrics.
#[derive(Debug)]
pub struct ProxyMetrics {
    /// Requests answered, by route and status class.
    pub requests: Family<RequestLabels, Counter>,
    /// Time from connecting to (or reusing a connection to) the upstream until the response is
    /// done, by route.
    pub upstream_latency: Family<RouteLabels, Histogram>,
    /// Upstream attempts that were retried on another endpoint.
    pub retries: Counter,
    /// Routing tables published.
    pub table_swaps: Counter,
    /// Client connections the HTTP/1.1 fast path gave to Pingora's general path, by reason.
    pub general_path: Family<ReasonLabels, Counter>,
    /// HTTP/2 streams given to Pingora's general path, by reason.
    pub general_path_streams: Family<ReasonLabels, Counter>,
    /// TLS handshakes with clients that failed, by reason (`error`, `timeout`).
    pub tls_handshake_failures: Family<ReasonLabels, Counter>,
}

/// Labels of the general-path counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why the general path serves the connection or stream, e.g. `Upgrade` or
    /// `request body`.
    pub reason: &'static str,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        ProxyMetrics {
            requests: Family::default(),
            upstream_latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
            retries: Counter::default(),
            table_swaps: Counter::default(),
            general_path: Family::default(),
            general_path_streams: Family::default(),
            tls_handshake_failures: Family::default(),
        }
    }
}

impl ProxyMetrics {
    /// Records one answered request of a route: status (0: nothing was sent) and, when it
    /// went to an endpoint, the time from the first attempt until the response was done.
    pub fn record_route(
        &self,
        route: &Arc<str>,
        handles: &RouteMetrics,
        code: u16,
        upstream_time: Option<std::time::Duration>,
    ) {
        let label = || RouteLabel(Some(route.clone()));
        if let Some(time) = upstream_time {
            handles
                .latency
                .get_or_init(|| {
                    self.upstream_latency
                        .get_or_create(&RouteLabels { route: label() })
                        .clone()
                })
                .observe(time.as_secs_f64());
        }
        let class = StatusClass::of(code);
        handles.requests[class as usize]
            .get_or_init(|| {
                self.requests
                    .get_or_create(&RequestLabels {
                        route: label(),
                        code: class,
                    })
                    .clone()
            })
            .inc();
    }

    /// Records one request no route matched (answered by pier itself): status (0: nothing was
    /// sent).
    pub fn record_unrouted(&self, code: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: RouteLabel(None),
                code: StatusClass::of(code),
            })
            .inc();
    }

    /// Registers every metric under the `pier_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        crate::health::metrics().register(registry);
        registry.register(
            "pier_requests",
            "Requests answered, by route and status class",
            self.requests.clone(),
        );
        registry.register(
            "pier_upstream_response_seconds",
            "Upstream response time, by route",
            self.upstream_latency.clone(),
        );
        registry.register(
            "pier_upstream_retries",
            "Upstream attempts retried on another endpoint",
            self.retries.clone(),
        );
        registry.register(
            "pier_general_path_connections",
            "Client connections served by the general proxy path rather than the HTTP/1.1 \
             fast path, by reason",
            self.general_path.clone(),
        );
        registry.register(
            "pier_general_path_http2_streams",
            "HTTP/2 streams served by the general proxy path rather than the fast path, by \
             reason",
            self.general_path_streams.clone(),
        );
        registry.register(
            "pier_tls_handshake_failures",
            "TLS handshakes with clients that failed (error: no common protocol or cipher, not \
             TLS, a certificate the client refused, a reset; timeout: not done within 60 s)",
            self.tls_handshake_failures.clone(),
        );
        registry.register(
            "pier_access_log_dropped",
            "Access-log lines dropped because standard output could not keep up",
            crate::access::dropped().clone(),
        );
        registry.register(
            "pier_table_swaps",
            "Routing tables published to the proxy",
            self.table_swaps.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn exposition(metrics: &ProxyMetrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        text
    }

    #[test]
    fn route_handles_count_by_class_and_share_the_families_series() {
        let metrics = ProxyMetrics::default();
        let route: Arc<str> = Arc::from("shop/web");
        // Two compiled copies of the same route (e.g. before and after a table swap).
        let (before, after) = (RouteMetrics::default(), RouteMetrics::default());
        let ms = Some(Duration::from_millis(3));
        metrics.record_route(&route, &before, 200, ms);
        // The handles are resolved on first use and kept for the next requests.
        assert!(before.requests[StatusClass::Success as usize]
            .get()
            .is_some());
        assert!(before.latency.get().is_some());
        assert!(after.requests[StatusClass::Success as usize]
            .get()
            .is_none());
        metrics.record_route(&route, &after, 204, ms);
        metrics.record_route(&route, &after, 503, None);
        metrics.record_unrouted(404);
        let text = exposition(&metrics);
        assert!(
            text.contains("pier_requests_total{route=\"shop/web\",code=\"2xx\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("pier_requests_total{route=\"shop/web\",code=\"5xx\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pier_requests_total{route=\"none\",code=\"4xx\"} 1"),
            "{text}"
        );
        assert!(
            !text.contains("code=\"3xx\""),
            "unused classes stay absent: {text}"
        );
        assert!(
            text.contains("pier_upstream_response_seconds_count{route=\"shop/web\"} 2"),
            "{text}"
        );
    }
}
