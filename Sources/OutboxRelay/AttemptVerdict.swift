import Foundation

/// What becomes of a delivery after one attempt.
public enum DeliveryOutcome: String, Sendable {
    case succeeded
    /// Failed; pending again at `nextAttemptAt`.
    case retry
    /// Failed and the retry schedule is exhausted.
    case dead
}

/// One attempt, judged and ready to record.
public struct AttemptVerdict: Sendable {
    public var deliveryID: Int64
    public var eventID: String
    public var subscriptionID: Int64
    /// This attempt's number: the attempts made before it, plus one.
    public var attempt: Int
    public var subscriptionName: String
    /// When the event was written: the start of commit-to-delivery latency.
    public var eventCreatedAt: Date
    public var outcome: DeliveryOutcome
    public var nextAttemptAt: Date?
    public var statusCode: Int?
    public var error: String?
    public var startedAt: Date
    public var durationMilliseconds: Double
    public var responseExcerpt: String?
    /// The endpoint answered 410 Gone: disable its subscription.
    public var endpointGone: Bool

    /// Judges `response` to `delivery` by SPEC §4: any 2xx succeeds; everything
    /// else fails and is retried on the schedule (a `Retry-After` on 429/503 is
    /// honoured, capped at the schedule's longest interval) until it is dead.
    public init<R: RandomNumberGenerator>(
        delivery: ClaimedDelivery, response: WebhookResponse, schedule: RetrySchedule, now: Date, random: inout R
    ) {
        deliveryID = delivery.deliveryID
        eventID = delivery.eventID
        subscriptionID = delivery.subscriptionID
        attempt = delivery.attempts + 1
        subscriptionName = delivery.subscriptionName
        eventCreatedAt = delivery.eventCreatedAt
        statusCode = response.statusCode
        startedAt = response.startedAt
        durationMilliseconds = response.duration.milliseconds
        responseExcerpt = Self.text(response.bodyExcerpt)
        endpointGone = response.statusCode == 410
        if let code = response.statusCode, (200...299).contains(code) {
            outcome = .succeeded
            error = nil
            return
        }
        error = Self.failureText(response)
        guard var wait = schedule.delay(afterFailure: delivery.retryStep, using: &random) else {
            outcome = .dead
            return
        }
        if let code = response.statusCode, code == 429 || code == 503,
           let asked = response.retryAfter.flatMap({ Self.retryAfter($0, now: now) }) {
            wait = max(wait, min(asked, schedule.longest))
        }
        outcome = .retry
        nextAttemptAt = now.addingTimeInterval(wait.seconds)
    }

    static func failureText(_ response: WebhookResponse) -> String {
        guard let code = response.statusCode else { return response.error ?? "no response" }
        switch code {
        case 300...399: return "HTTP \(code): redirects are not followed"
        case 410: return "HTTP 410 Gone: the endpoint asked to stop; subscription disabled"
        default: return "HTTP \(code)"
        }
    }

    /// `Retry-After` as delta-seconds or an HTTP date.
    static func retryAfter(_ value: String, now: Date) -> Duration? {
        let trimmed = value.trimmingSpaces
        if let seconds = Int(trimmed) { return seconds >= 0 ? .seconds(seconds) : nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: trimmed) else { return nil }
        return .milliseconds(Int64(max(0, date.timeIntervalSince(now)) * 1_000))
    }

    /// The first bytes of a body as text PostgreSQL accepts (valid UTF-8, no NUL).
    static func text(_ bytes: [UInt8]) -> String? {
        guard !bytes.isEmpty else { return nil }
        return String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "\0", with: "")
    }
}
