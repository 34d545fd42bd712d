import OrgdCore

/// Which of a client's several orgd addresses its calls go to now, and the
/// connection there: connected lazily, one connect at a time however many
/// calls are waiting, and moved on to the next address (in the order given,
/// wrapping round) when that connection is lost.
actor EndpointRotation {
    /// The connection calls use now, and the index of its address.
    typealias Current = (index: Int, connection: OrgdConnection)

    let endpoints: [OrgdEndpoint]
    private let connector: @Sendable (OrgdEndpoint) async throws -> OrgdConnection
    private var current: Current?
    /// The connect under way, which every call arriving meanwhile waits for.
    private var connecting: Task<Current, Error>?
    /// Where the next connect starts.
    private var nextIndex = 0
    private var closed = false

    init(endpoints: [OrgdEndpoint], connector: @escaping @Sendable (OrgdEndpoint) async throws -> OrgdConnection) {
        precondition(!endpoints.isEmpty, "a rotation needs an address")
        self.endpoints = endpoints
        self.connector = connector
    }

    /// The open connection, connecting first when there is none (or it was lost).
    func connection() async throws -> Current {
        if closed { throw RPCError(.unavailable, "the connection is closed") }
        if let current {
            if current.connection.isOpen { return current }
            lost(current)
        }
        if let connecting { return try await connecting.value }
        let start = nextIndex
        let task = Task { [endpoints, connector] in
            try await Self.connectFirst(endpoints, from: start, connector)
        }
        connecting = task
        let result: Result<Current, Error> = await task.result
        connecting = nil
        let connected = try result.get()
        if closed {
            await connected.connection.close()
            throw RPCError(.unavailable, "the connection is closed")
        }
        current = connected
        return connected
    }

    /// Gives up `dropped` (if it is still the current connection): the next
    /// call connects again, from the address after its one.
    func lost(_ dropped: Current) {
        guard let current, current.connection === dropped.connection else { return }
        self.current = nil
        nextIndex = (dropped.index + 1) % endpoints.count
        Task { await dropped.connection.close() }
    }

    /// Closes the current connection; later calls fail with UNAVAILABLE.
    func close() async {
        closed = true
        if let current { await current.connection.close() }
        current = nil
    }

    /// Tries each address once, from `start` and wrapping round, and returns
    /// the first connection made; when none can be, UNAVAILABLE naming every
    /// address tried and why each failed.
    private static func connectFirst(
        _ endpoints: [OrgdEndpoint], from start: Int, _ connector: @Sendable (OrgdEndpoint) async throws -> OrgdConnection
    ) async throws -> Current {
        var failures: [String] = []
        for offset in 0..<endpoints.count {
            let index = (start + offset) % endpoints.count
            do {
                return (index, try await connector(endpoints[index]))
            } catch let error as RPCError {
                failures.append(error.message)  // names the address already
            } catch {
                failures.append("\(endpoints[index]): \(error)")
            }
        }
        throw RPCError(.unavailable, "cannot connect to orgd at any of its \(endpoints.count) addresses (\(failures.joined(separator: "; ")))")
    }
}
