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

    /// Reads the rows of `outbox.claim_deliveries(…)` by column name.
    static func decode(_ result: QueryResult) throws -> [ClaimedDelivery] {
        let columns = try Columns(result)
        return try result.rows.map { try ClaimedDelivery(row: $0, columns: columns) }
    }

    private init(row: PostgresRow, columns: Columns) throws {
        deliveryID = try row.decode(at: columns.deliveryID)
        eventID = try row.decode(at: columns.eventID)
        subscriptionID = try row.decode(at: columns.subscriptionID)
        attempts = try row.decode(at: columns.attempts)
        retryStep = try row.decode(at: columns.retryStep)
        eventType = try row.decode(at: columns.eventType)
        payload = try row.decode(at: columns.payload)
        eventHeaders = try row.decode(at: columns.eventHeaders)
        eventCreatedAt = try row.decode(at: columns.eventCreatedAt)
        eventTimestamp = try row.decode(at: columns.eventTimestamp)
        url = try row.decode(at: columns.url)
        subscriptionHeaders = try row.decode(at: columns.subscriptionHeaders)
        secrets = [try row.decode(String.self, at: columns.secret)]
            + [try row.decode(String?.self, at: columns.previousSecret)].compactMap { $0 }
        timeout = try row.decode(Double?.self, at: columns.timeoutSeconds).map { .microseconds(Int64($0 * 1_000_000)) }
        retrySchedule = try row.decode([Double]?.self, at: columns.retryScheduleSeconds)
            .map { $0.map { .microseconds(Int64($0 * 1_000_000)) } }
        subscriptionName = try row.decode(at: columns.subscriptionName)
    }

    /// Where each column of the claim's result is, looked up by name once per result.
    private struct Columns {
        let deliveryID, eventID, subscriptionID, attempts, retryStep, eventType, payload, eventHeaders: Int
        let eventCreatedAt, eventTimestamp, url, subscriptionHeaders, secret, previousSecret: Int
        let timeoutSeconds, retryScheduleSeconds, subscriptionName: Int

        init(_ result: QueryResult) throws {
            func index(_ name: String) throws -> Int {
                guard let column = result.column(named: name) else {
                    throw PostgresError(code: .decoding, message: "column \"\(name)\" is not in the claim's result")
                }
                return column
            }
            deliveryID = try index("delivery_id")
            eventID = try index("event_id")
            subscriptionID = try index("subscription_id")
            attempts = try index("attempts")
            retryStep = try index("retry_step")
            eventType = try index("event_type")
            payload = try index("payload")
            eventHeaders = try index("event_headers")
            eventCreatedAt = try index("event_created_at")
            eventTimestamp = try index("event_timestamp")
            url = try index("url")
            subscriptionHeaders = try index("subscription_headers")
            secret = try index("secret")
            previousSecret = try index("previous_secret")
            timeoutSeconds = try index("timeout_seconds")
            retryScheduleSeconds = try index("retry_schedule_seconds")
            subscriptionName = try index("subscription_name")
        }
    }
}
