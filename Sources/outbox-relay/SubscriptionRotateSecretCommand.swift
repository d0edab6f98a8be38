import ArgumentParser
import Foundation
import OutboxRelay
import OutboxSQL

/// `subscription rotate-secret NAME [--secret whsec_…] [--grace 24h]`: a new
/// signing secret; the old one keeps signing too until the grace period ends,
/// so receivers can switch over without rejecting anything.
struct SubscriptionRotateSecretCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-secret",
        abstract: "Replace a subscription's signing secret and print the new one (shown only this once).",
        discussion: "During the grace period requests carry two signatures, one per secret."
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: "The subscription's name.")
    var name: String

    @Option(help: "The new secret whsec_… (env OUTBOX_SECRET); generated when absent.")
    var secret: String?

    @Option(parsing: .unconditional, help: "How long the old secret keeps signing (env OUTBOX_GRACE; default 24h).")
    var grace: String?

    func validate() throws {
        _ = try gracePeriod()
    }

    private func gracePeriod() throws -> Duration {
        try EnvironmentSetting.parse(grace, "OUTBOX_GRACE", option: "grace", DurationText.parse) ?? .seconds(86_400)
    }

    func run() throws {
        let json = try output.isJSON
        let grace = try gracePeriod()
        let secret = EnvironmentSetting.value(self.secret, "OUTBOX_SECRET")
        let rotated = try global.withDatabase { connection in
            try connection.withTransaction { connection in
                // The current secret becomes the previous one, signing until the grace
                // ends. The function runs as the schema's owner: the operator's role
                // writes secrets but reads none.
                let result = try connection.query(
                    "SELECT * FROM outbox.rotate_secret($1, $2, $3::interval)", [name, secret, grace])
                guard result.count == 1 else { throw OperatorError.noSubscription(name) }
                return (secret: try result[0].decode(String.self, at: 0),
                        previousExpiresAt: try result[0].decode(Date.self, at: 1))
            }
        }
        let record = OutputRecord([
            "name": .text(name),
            "secret": .text(rotated.secret),
            "previous_secret_expires_at": .timestamp(rotated.previousExpiresAt),
        ])
        if json {
            print(try TableOutput.json(record))
        } else {
            print("rotated the secret of subscription \"\(name)\"; the previous one signs too until "
                + "\(rotated.previousExpiresAt.formatted(.iso8601)). The new secret (shown only now, keep it safe):")
            print(rotated.secret)
        }
    }
}
