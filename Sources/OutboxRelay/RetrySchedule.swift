import Foundation

/// When to try again after a failed attempt: one interval per retry, then dead.
/// Each wait is jittered by up to ±`jitter` of itself, so endpoints that failed
/// together are not retried in lockstep.
public struct RetrySchedule: Sendable, Equatable {
    /// SPEC §5 default: 5s, 5m, 30m, 2h, 5h, 10h, 10h.
    public static let standard = RetrySchedule(intervals: [
        .seconds(5), .seconds(300), .seconds(1_800), .seconds(7_200), .seconds(18_000), .seconds(36_000), .seconds(36_000),
    ])

    public var intervals: [Duration]
    /// Fraction of each interval added or removed at random (0.1 = ±10 %).
    public var jitter: Double

    public init(intervals: [Duration], jitter: Double = 0.1) {
        self.intervals = intervals
        self.jitter = jitter
    }

    /// The longest interval: the cap on a `Retry-After` the endpoint asks for.
    public var longest: Duration { intervals.max() ?? .zero }

    /// The wait before retry number `step` (0-based), or nil when the schedule is
    /// exhausted and the delivery is dead.
    public func delay<R: RandomNumberGenerator>(afterFailure step: Int, using random: inout R) -> Duration? {
        guard step >= 0, step < intervals.count else { return nil }
        let base = intervals[step].seconds
        let spread = base * jitter
        let jittered = spread > 0 ? base + Double.random(in: -spread...spread, using: &random) : base
        return .microseconds(Int64(max(0, jittered) * 1_000_000))
    }
}
