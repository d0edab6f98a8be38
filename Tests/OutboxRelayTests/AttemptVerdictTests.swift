import Foundation
import OutboxSQL
import Testing
import TestSupport

@testable import OutboxRelay

/// How one attempt is judged (SPEC §4): 2xx succeeds, anything else retries on
/// the schedule (Retry-After on 429/503, capped at the longest interval) until dead; 410 disables.
@Suite struct AttemptVerdictTests {
    static let schedule = RetrySchedule(intervals: [.seconds(10), .seconds(60), .seconds(600)], jitter: 0)
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    /// A claimed delivery that has failed `retryStep` times. ClaimedDelivery is only made
    /// from a claim's result, so this reads one from PostgreSQL with the claim's columns.
    static func delivery(retryStep: Int) throws -> ClaimedDelivery {
        let database = try TestDatabase(migrated: false)
        let result = try database.connect().query("""
            SELECT 7::bigint AS delivery_id, 'evt-1' AS event_id, 3::bigint AS subscription_id,
                   $1::integer AS attempts, $1::integer AS retry_step, 'order.paid' AS event_type, '{}' AS payload,
                   NULL::text AS event_headers, now() AS event_created_at, '2026-01-01T00:00:00Z' AS event_timestamp,
                   'https://example.com/hook' AS url, NULL::text AS subscription_headers,
                   'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' AS secret, NULL::text AS previous_secret,
                   NULL::float8 AS timeout_seconds, NULL::float8[] AS retry_schedule_seconds, 'orders' AS subscription_name
            """, [retryStep])
        return try #require(try ClaimedDelivery.decode(result).first)
    }

    static func response(_ status: Int?, retryAfter: String? = nil, error: String? = nil) -> WebhookResponse {
        WebhookResponse(tag: 7, startedAt: now, duration: .milliseconds(12), statusCode: status, error: error,
                        retryAfter: retryAfter, bodyExcerpt: Array("nope\0".utf8))
    }

    static func judge(_ response: WebhookResponse, retryStep: Int = 0) throws -> AttemptVerdict {
        var random = SeededRandom(seed: 1)
        return AttemptVerdict(delivery: try delivery(retryStep: retryStep), response: response, schedule: schedule,
                              now: now, random: &random)
    }

    /// Seconds from `now` to the next attempt.
    static func wait(_ verdict: AttemptVerdict) throws -> Double {
        try #require(verdict.nextAttemptAt).timeIntervalSince(now)
    }

    @Test(arguments: [200, 201, 204, 299])
    func anyTwoHundredSucceeds(status: Int) throws {
        let verdict = try Self.judge(Self.response(status))
        #expect(verdict.outcome == .succeeded && verdict.error == nil && verdict.nextAttemptAt == nil)
        #expect(verdict.attempt == 1 && !verdict.endpointGone)
    }

    @Test func aFailureRetriesAfterTheIntervalOfItsStep() throws {
        let first = try Self.judge(Self.response(500))
        #expect(first.outcome == .retry && first.error == "HTTP 500")
        #expect(try Self.wait(first) == 10)
        #expect(first.responseExcerpt == "nope", "NUL is dropped so PostgreSQL takes the text")
        #expect(try Self.wait(Self.judge(Self.response(500), retryStep: 2)) == 600)
    }

    @Test func pastTheScheduleItIsDead() throws {
        let verdict = try Self.judge(Self.response(500), retryStep: 3)
        #expect(verdict.outcome == .dead && verdict.nextAttemptAt == nil && verdict.attempt == 4)
    }

    @Test func retryAfterOn429IsHonouredButCappedAtTheLongestInterval() throws {
        #expect(try Self.wait(Self.judge(Self.response(429, retryAfter: "120"))) == 120)
        #expect(try Self.wait(Self.judge(Self.response(503, retryAfter: "86400"))) == 600, "capped at 600 s")
        // A shorter Retry-After never shortens the schedule's own wait.
        #expect(try Self.wait(Self.judge(Self.response(429, retryAfter: "1"))) == 10)
        // Only 429 and 503 carry a meaningful Retry-After.
        #expect(try Self.wait(Self.judge(Self.response(500, retryAfter: "120"))) == 10)
        // Unreadable values are ignored.
        #expect(try Self.wait(Self.judge(Self.response(429, retryAfter: "soon"))) == 10)
        #expect(try Self.wait(Self.judge(Self.response(429, retryAfter: "-5"))) == 10)
    }

    @Test func retryAfterAsAnHTTPDate() throws {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        let inFiveMinutes = formatter.string(from: Self.now.addingTimeInterval(300))
        #expect(try Self.wait(Self.judge(Self.response(503, retryAfter: inFiveMinutes))) == 300)
    }

    @Test func goneDisablesAndRedirectsAreNotFollowed() throws {
        let gone = try Self.judge(Self.response(410))
        #expect(gone.endpointGone && gone.outcome == .retry)
        #expect(gone.error?.contains("410 Gone") == true)
        #expect(try Self.judge(Self.response(302)).error == "HTTP 302: redirects are not followed")
    }

    @Test func noResponseKeepsTheTransportError() throws {
        let verdict = try Self.judge(Self.response(nil, error: "timed out after 2s"))
        #expect(verdict.outcome == .retry && verdict.error == "timed out after 2s" && verdict.statusCode == nil)
        #expect(try Self.judge(Self.response(nil)).error == "no response")
    }
}
