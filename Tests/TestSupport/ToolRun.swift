import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A program run by a test to completion: a tool (psql, schemathesis, a Python
/// script, the relay's CLI in a configuration test) or a server's control script.
///
/// Spawned with `posix_spawnp` and reaped with `waitpid` on a thread of its own, not
/// with Foundation's `Process`: on Linux, `Process` learns of a child's exit when a
/// socket it hands the child is closed, and a server the command starts in the
/// background (`pg_ctl start`) inherits that socket, so the command would look alive
/// for as long as the server runs. Here stdout and stderr go to temporary files
/// (together, unless asked to keep them apart) and the child inherits no other descriptor; it gets an empty signal mask and
/// default handlers (a test's threads block SIGTERM). Past `timeout` it is stopped,
/// SIGTERM then SIGKILL, as a process group when it leads one (so a browser it
/// started goes with it), even while the test is being cancelled.
public struct ToolRun: Sendable {
    /// The exit status, or 128 + the signal that ended it.
    public let status: Int32
    /// Standard output, and standard error interleaved as written unless `separateErrors`.
    public let output: String
    /// Standard error, when run with `separateErrors`; otherwise empty.
    public let errors: String
    /// True when it was stopped for outliving its timeout.
    public let timedOut: Bool

    public var succeeded: Bool { status == 0 && !timedOut }

    /// Runs `arguments` (the first is looked up on `PATH`) in `directory`, with
    /// `environment` added to this process's, less the variables whose names start
    /// with `withoutPrefix`.
    public static func run(
        _ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:],
        withoutPrefix excluded: String? = nil, separateErrors: Bool = false, timeout: Duration
    ) async throws -> ToolRun {
        let command = directory.map { ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", $0.path] + arguments } ?? arguments
        let inherited = ProcessInfo.processInfo.environment.filter { variable in
            excluded.map { !variable.key.hasPrefix($0) } ?? true
        }
        let variables = inherited.merging(environment) { $1 }
        return try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                continuation.resume(with: Result {
                    try runBlocking(command, environment: variables, separateErrors: separateErrors, timeout: timeout)
                })
            }
            thread.name = "test-tool-\(arguments.first ?? "")"
            thread.start()
        }
    }

    private static func runBlocking(
        _ arguments: [String], environment: [String: String], separateErrors: Bool, timeout: Duration
    ) throws -> ToolRun {
        let logs = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-tool-\(UUID().uuidString)").path
        let (outputPath, errorsPath) = (logs + ".log", logs + ".err")
        defer { unlink(outputPath); unlink(errorsPath) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if separateErrors {
            posix_spawn_file_actions_addopen(&actions, 2, errorsPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        // Nothing else of the test process (glibc ignores a descriptor closed meanwhile).
        let inherited = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.compactMap { Int32($0) } ?? []
        for descriptor in inherited where descriptor > 2 {
            posix_spawn_file_actions_addclose(&actions, descriptor)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        guard spawned == 0 else {
            throw TestDatabaseError("could not start \(arguments[0]): \(String(cString: strerror(spawned)))")
        }

        var status: Int32 = 0
        var timedOut = false
        var deadline = ContinuousClock.now.advanced(by: timeout)
        var signals = [SIGTERM, SIGKILL]
        while waitpid(pid, &status, WNOHANG) == 0 {
            if ContinuousClock.now >= deadline, let signal = signals.first {
                signals.removeFirst()
                timedOut = true
                if kill(-pid, signal) != 0 { kill(pid, signal) }
                deadline = ContinuousClock.now.advanced(by: .seconds(5))
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        let errors = separateErrors ? (try? String(contentsOfFile: errorsPath, encoding: .utf8)) ?? "" : ""
        let code = status & 0x7F == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return ToolRun(status: code, output: output, errors: errors, timedOut: timedOut)
    }
}
