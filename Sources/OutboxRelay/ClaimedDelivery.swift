import Foundation
import OutboxSQL

/// A delivery this relay holds under lease, with everything needed to send it.
public struct ClaimedDelivery: Sendable {
    public var deliveryID: Int64
    public var eventID: String
    public var subscriptionID: Int64
    /// For logs and metric labels.
    public var subscriptionName: String
    /// Attempts made before this one.
    public var attempts: Int
    /// Failed attempts since the schedule (re)started.
    public var retryStep: Int
    public var eventType: String
    /// The stored payload, as JSON text.
    public var payload: String
    public var eventHeaders: String?
    public var eventCreatedAt: Date
    /// `created_at` in RFC 3339, for the body's `timestamp`.
    public var eventTimestamp: String
    public var url: String
    public var subscriptionHeaders: String?
    /// The current secret first, then the previous one during rotation.
    public var secrets: [String]
    /// Per-subscription overrides; nil = the global default.
    public var timeout: Duration?
    public var retrySchedule: [Duration]?

    /// Reads one row of `outbox.claim_deliveries(…)`.
    init(row: PostgresRow) throws {
        deliveryID = try row.decode(at: 0)
        eventID = try row.decode(at: 1)
        subscriptionID = try row.decode(at: 2)
        attempts = try row.decode(at: 3)
        retryStep = try row.decode(at: 4)
        eventType = try row.decode(at: 5)
        payload = try row.decode(at: 6)
        eventHeaders = try row.decode(at: 7)
        eventCreatedAt = try row.decode(at: 8)
        eventTimestamp = try row.decode(at: 9)
        url = try row.decode(at: 10)
        subscriptionHeaders = try row.decode(at: 11)
        secrets = [try row.decode(String.self, at: 12)] + [try row.decode(String?.self, at: 13)].compactMap { $0 }
        timeout = try row.decode(Double?.self, at: 14).map { .microseconds(Int64($0 * 1_000_000)) }
        retrySchedule = try row.decode([Double]?.self, at: 15).map { $0.map { .microseconds(Int64($0 * 1_000_000)) } }
        subscriptionName = try row.decode(at: 16)
    }
}
