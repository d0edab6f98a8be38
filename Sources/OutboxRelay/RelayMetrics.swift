import Foundation
import Metrics

/// The relay's metrics (SPEC §7), through swift-metrics: `outbox-relay run`
/// bootstraps a Prometheus backend and serves them on `/metrics`. Names are
/// `outbox_…` with their unit; labels carry the subscription's name, never a URL
/// or a secret.
enum RelayMetrics {
    /// One count per judged attempt: outcome `succeeded`, `retry` (failed, will be retried) or `dead`.
    /// The metric handles are looked up once per subscription in the batch, not per attempt.
    static func recordOutcomes(_ verdicts: [AttemptVerdict]) {
        for (subscription, attempts) in Dictionary(grouping: verdicts, by: { $0.subscriptionName }) {
            let dimensions = [("subscription", subscription)]
            let durations = Timer(label: "outbox_attempt_duration_seconds", dimensions: dimensions)
            let latencies = Timer(label: "outbox_delivery_latency_seconds", dimensions: dimensions)
            var counts: [DeliveryOutcome: Int] = [:]
            for verdict in attempts {
                counts[verdict.outcome, default: 0] += 1
                durations.recordNanoseconds(Int64(verdict.durationMilliseconds * 1_000_000))
                if verdict.outcome == .succeeded {
                    let answeredAt = verdict.startedAt.addingTimeInterval(verdict.durationMilliseconds / 1_000)
                    let latency = answeredAt.timeIntervalSince(verdict.eventCreatedAt)
                    latencies.recordNanoseconds(Int64(max(0, latency) * 1_000_000_000))
                }
            }
            for (outcome, count) in counts {
                Counter(label: "outbox_deliveries_total", dimensions: dimensions + [("outcome", outcome.rawValue)])
                    .increment(by: count)
            }
        }
    }

    /// Deliveries this process holds: claimed and not yet recorded.
    static func setInFlight(_ count: Int) {
        Gauge(label: "outbox_in_flight_deliveries").record(count)
    }

    /// A database call failed while doing `activity` (claiming, recording, …).
    static func databaseError(activity: String) {
        Counter(label: "outbox_database_errors_total", dimensions: [("activity", activity)]).increment()
    }

    /// The backlog as the database sees it, per subscription.
    static func setBacklog(_ rows: [SubscriptionBacklog]) {
        for row in rows {
            let dimensions = [("subscription", row.name)]
            Gauge(label: "outbox_backlog_deliveries", dimensions: dimensions).record(row.pending)
            Gauge(label: "outbox_oldest_pending_age_seconds", dimensions: dimensions).record(row.oldestPendingAgeSeconds)
            Gauge(label: "outbox_circuit_state", dimensions: dimensions).record(row.circuitStateValue)
            Gauge(label: "outbox_subscription_enabled", dimensions: dimensions).record(row.enabled ? 1 : 0)
        }
    }
}

/// One subscription's row of the backlog query (`DeliveryStore.backlog()`).
public struct SubscriptionBacklog: Sendable, Equatable {
    public var name: String
    public var enabled: Bool
    public var pending: Int
    public var oldestPendingAgeSeconds: Double
    /// `closed`, `half_open` or `open`.
    public var circuitState: String

    /// 0 closed, 1 half open, 2 open: a gauge an alert can compare.
    var circuitStateValue: Int {
        switch circuitState {
        case "open": 2
        case "half_open": 1
        default: 0
        }
    }
}
