
/// Upkeep: the backlog metrics, lease renewal and the rescue of expired leases.
extension Relay {
    func observeBacklog() async {
        var health = DatabaseHealth(logger: logger, activity: "reading the backlog")
        while !Task.isCancelled {
            do {
                RelayMetrics.setBacklog(try await store.backlog())
                health.succeeded()
            } catch {
                health.failed(error)
            }
            try? await Task.sleep(for: Self.backlogInterval)
        }
    }

    static let backlogInterval = Duration.seconds(5)

    // MARK: - Upkeep

    func upkeep() async {
        var health = DatabaseHealth(logger: logger, activity: "renewing leases")
        let period = configuration.lease / 3
        while !Task.isCancelled {
            try? await Task.sleep(for: period)
            if Task.isCancelled { return }
            do {
                if outstanding > 0 { try await store.renewLeases() }
                let rescued = try await store.rescueExpiredLeases()
                health.succeeded()
                if rescued > 0 {
                    logger.notice("returned deliveries whose lease expired to pending", metadata: ["count": "\(rescued)"])
                    claimWake.signal()
                }
            } catch {
                health.failed(error)
            }
        }
    }
}
