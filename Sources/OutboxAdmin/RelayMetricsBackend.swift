import Prometheus

/// The Prometheus backend for `RelayMetrics`, with histogram buckets that fit
/// webhook attempts (milliseconds to the timeout) and commit-to-delivery latency
/// (milliseconds to hours, since retries wait).
public enum RelayMetricsBackend {
    public static func factory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["outbox_attempt_duration_seconds"] = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
            .seconds(30),
        ]
        factory.durationHistogramBuckets["outbox_delivery_latency_seconds"] = [
            .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(20), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5), .seconds(30), .seconds(60), .seconds(300),
            .seconds(1_800), .seconds(7_200), .seconds(36_000), .seconds(86_400),
        ]
        return factory
    }
}
