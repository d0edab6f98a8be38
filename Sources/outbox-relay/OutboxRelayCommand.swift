import ArgumentParser
import OutboxRelay

/// `outbox-relay`: the command line of SPEC §7.
@main
struct OutboxRelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox-relay",
        abstract: "Delivers events committed to outbox.events as signed webhooks.",
        discussion: "Every flag can also be set by an OUTBOX_… environment variable (see each flag's help); "
            + "libpq's PG… variables are used when no database URL is given.",
        version: OutboxRelayVersion.current,
        subcommands: [MigrateCommand.self, RunCommand.self]
    )
}
