import Foundation

/// Waits for a child started with Foundation's `Process` by reaping it with
/// `waitpid` directly.
///
/// Foundation learns of a child's exit from SIGCHLD; inside a test runner the
/// threads that spawn children block signals, and a child that exits quickly can
/// be left a zombie that `waitUntilExit()` waits on forever (seen in this suite).
/// Polling `waitpid(WNOHANG)` does not depend on the signal.
public enum ChildProcessExit {
    /// The exit status (or the signal number when killed), or nil when the child
    /// is still running after `timeout`.
    public static func wait(for process: Process, timeout: Duration = .seconds(3_600)) -> Int32? {
        outcome(of: process, timeout: timeout)?.code
    }

    /// How the child ended: killed by signal `code`, or exited with status `code`;
    /// nil when it is still running after `timeout`.
    public static func outcome(of process: Process, timeout: Duration = .zero) -> (signaled: Bool, code: Int32)? {
        let pid = process.processIdentifier
        let deadline = ContinuousClock.now + timeout
        while true {
            var raw: Int32 = 0
            let reaped = waitpid(pid, &raw, WNOHANG)
            if reaped == pid {
                return raw & 0x7F == 0 ? (false, (raw >> 8) & 0xFF) : (true, raw & 0x7F)
            }
            if reaped == -1 && errno == ECHILD {
                // Foundation reaped it first and knows the status.
                process.waitUntilExit()
                return (process.terminationReason == .uncaughtSignal, process.terminationStatus)
            }
            if ContinuousClock.now >= deadline { return nil }
            usleep(5_000)
        }
    }

    /// True once the child has exited (reaping it if Foundation has not).
    public static func hasExited(_ process: Process) -> Bool {
        wait(for: process, timeout: .zero) != nil
    }
}
