import ArgumentParser
import Foundation
import OutboxOperations
import OutboxRelay

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
        try EnvironmentSetting.parse(grace, "OUTBOX_GRACE", option: "grace", DurationText.parse) ?? SubscriptionRotation.defaultGrace
    }

    func run() throws {
        let json = try output.isJSON
        let grace = try gracePeriod()
        let rotation = SubscriptionRotation(subscription: name, secret: EnvironmentSetting.value(secret, "OUTBOX_SECRET"), grace: grace)
        let rotated = try global.withDatabase(rotation.run)
        let record = OutputRecord([
            "name": .text(name),
            "secret": .text(rotated.secret),
            "previous_secret_expires_at": .timestamp(rotated.previousSecretExpiresAt),
        ])
        if json {
            print(try TableOutput.json(record))
        } else {
            print("rotated the secret of subscription \"\(name)\"; the previous one signs too until "
                + "\(rotated.previousSecretExpiresAt.formatted(.iso8601)). The new secret (shown only now, keep it safe):")
            print(rotated.secret)
        }
    }
}
