import ArgumentParser
import OutboxRelay

/// `outbox-relay`: the command line of SPEC §7.
@main
struct OutboxRelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outbox-relay",
        abstract: "Delivers events committed to outbox.events as signed webhooks.",
        discussion: "Flags can also be set by OUTBOX_… environment variables where that makes sense: each flag's "
            + "help names its variable. libpq's PG… variables are used when no database URL is given.",
        version: OutboxRelayVersion.current,
        subcommands: [
            MigrateCommand.self, RunCommand.self, SubscriptionCommand.self, PublishCommand.self,
            DeliveriesCommand.self, ReplayCommand.self, StatusCommand.self, TokenCommand.self, RolesCommand.self,
        ]
    )
}
