//! `GET /metrics` of `xmc serve`: Prometheus/OpenMetrics text through `prometheus-client`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    id: String,
    method: String,
}

/// The server's counters.
pub struct ServeMetrics {
    registry: Registry,
    requests: Family<StatusLabel, Counter>,
    latency: Histogram,
    /// Records predicted (in answered requests).
    pub records: Counter,
}

impl ServeMetrics {
    pub fn new(model_id: &str, method: &str) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<StatusLabel, Counter>::default();
        registry.register("xmc_requests", "HTTP responses by status", requests.clone());
        // 1 ms to ~33 s.
        let latency = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register("xmc_request_seconds", "Time from request to response", latency.clone());
        let records = Counter::default();
        registry.register("xmc_records_predicted", "Records predicted in answered requests", records.clone());
        let model = Family::<ModelLabel, Gauge>::default();
        model.get_or_create(&ModelLabel { id: model_id.to_string(), method: method.to_string() }).set(1);
        registry.register("xmc_model_info", "The model served (id: hash of its folder)", model);
        ServeMetrics { registry, requests, latency, records }
    }

    /// One response.
    pub fn observe(&self, status: u16, elapsed: Duration) {
        self.requests.get_or_create(&StatusLabel { status }).inc();
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_status_and_names_the_model() {
        let m = ServeMetrics::new("abc123", "xr");
        m.observe(200, Duration::from_millis(3));
        m.observe(200, Duration::from_millis(5));
        m.observe(503, Duration::from_millis(1));
        m.records.inc_by(7);
        let text = m.encode();
        assert!(text.contains("xmc_requests_total{status=\"200\"} 2"), "{text}");
        assert!(text.contains("xmc_requests_total{status=\"503\"} 1"), "{text}");
        assert!(text.contains("xmc_request_seconds_count 3"), "{text}");
        assert!(text.contains("xmc_records_predicted_total 7"), "{text}");
        assert!(text.contains("xmc_model_info{id=\"abc123\",method=\"xr\"} 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
