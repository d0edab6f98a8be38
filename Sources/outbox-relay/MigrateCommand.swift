import ArgumentParser
import OutboxRelay
import OutboxSQL

/// `outbox-relay migrate`: applies the schema's pending migrations.
struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending sql/ migrations (safe to run from several replicas at once)."
    )

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let logger = try global.bootstrapLogging()
        let target = try global.databaseTarget()
        let connection = try Connection(target)
        let applied = try OutboxSchema.migrateAndGrant(on: connection)
        if applied.isEmpty {
            logger.info("schema is current; nothing to apply", metadata: ["database": "\(target)"])
        } else {
            for migration in applied {
                logger.info("applied migration", metadata: ["migration": "\(OutboxSchema.fileName(of: migration))"])
            }
        }
    }
}
