import Testing

@testable import OutboxRelay

/// Waits between attempts: one interval per retry, jittered within ±jitter, then dead.
@Suite struct RetryScheduleTests {
    static let schedule = RetrySchedule(intervals: [.seconds(5), .seconds(60), .seconds(600)], jitter: 0.1)

    @Test(arguments: 0..<3)
    func everyWaitStaysWithinTheJitterOfItsInterval(step: Int) {
        var random = SeededRandom(seed: UInt64(step) + 1)
        let base = Self.schedule.intervals[step].seconds
        var seen: [Double] = []
        for _ in 0..<2_000 {
            let wait = Self.schedule.delay(afterFailure: step, using: &random)!.seconds
            #expect(wait >= base * 0.9 - 1e-6 && wait <= base * 1.1 + 1e-6, "step \(step): \(wait) s")
            seen.append(wait)
        }
        // Jitter really spreads the waits: both sides of the interval are used.
        #expect(seen.contains { $0 < base * 0.95 } && seen.contains { $0 > base * 1.05 })
    }

    @Test func withoutJitterTheWaitIsTheIntervalExactly() {
        var random = SeededRandom(seed: 7)
        let exact = RetrySchedule(intervals: [.milliseconds(250), .seconds(2)], jitter: 0)
        #expect(exact.delay(afterFailure: 0, using: &random) == .milliseconds(250))
        #expect(exact.delay(afterFailure: 1, using: &random) == .seconds(2))
    }

    @Test func pastTheLastIntervalTheDeliveryIsDead() {
        var random = SeededRandom(seed: 7)
        #expect(Self.schedule.delay(afterFailure: 3, using: &random) == nil)
        #expect(Self.schedule.delay(afterFailure: -1, using: &random) == nil)
        #expect(RetrySchedule(intervals: []).delay(afterFailure: 0, using: &random) == nil)
    }

    @Test func theLongestIntervalIsTheLargestNotTheLast() {
        #expect(RetrySchedule(intervals: [.seconds(30), .seconds(300), .seconds(10)]).longest == .seconds(300))
        #expect(RetrySchedule(intervals: []).longest == .zero)
        #expect(RetrySchedule.standard.longest == .seconds(36_000))
    }
}
