import Testing

@testable import OutboxRelay

/// The claimer's coalescing wake-up: a signal wakes one wait, signals before a wait
/// are kept (once), and a wait without one ends at its timeout or on cancellation.
@Suite(.timeLimit(.minutes(1)))
struct WakeSignalTests {
    @Test func aSignalBeforeTheWaitIsKeptAndAnswersAtOnce() async {
        let signal = WakeSignal()
        signal.signal()
        let elapsed = await ContinuousClock().measure { await signal.wait(upTo: .seconds(30)) }
        #expect(elapsed < .seconds(5))
    }

    @Test func manySignalsCoalesceIntoOneWakeUp() async {
        let signal = WakeSignal()
        for _ in 0..<5 { signal.signal() }
        await signal.wait(upTo: .seconds(30))
        let second = await ContinuousClock().measure { await signal.wait(upTo: .milliseconds(200)) }
        #expect(second >= .milliseconds(200), "the second wait had no signal left and ran to its timeout")
    }

    @Test func withoutASignalTheWaitEndsAtItsTimeout() async {
        let elapsed = await ContinuousClock().measure { await WakeSignal().wait(upTo: .milliseconds(150)) }
        #expect(elapsed >= .milliseconds(150) && elapsed < .seconds(10))
    }

    @Test func aSignalWakesAWaiter() async {
        let signal = WakeSignal()
        let clock = ContinuousClock()
        let started = clock.now
        async let woken: Void = signal.wait(upTo: .seconds(30))
        // Whether the waiter has parked yet or not, the signal wakes it (one sent before is kept).
        try? await Task.sleep(for: .milliseconds(50))
        signal.signal()
        await woken
        #expect(clock.now - started < .seconds(10))
    }

    @Test func cancellingTheWaitEndsIt() async {
        let signal = WakeSignal()
        let clock = ContinuousClock()
        let started = clock.now
        let waiting = Task { await signal.wait(upTo: .seconds(30)) }
        try? await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        await waiting.value
        #expect(clock.now - started < .seconds(10))
    }
}
