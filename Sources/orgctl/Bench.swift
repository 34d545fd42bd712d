import ArgumentParser
import Foundation
import Histogram
import OrgdClient
import OrgdCore
import OrgdProto
import Synchronization

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Load-test orgd: calls/s, latency percentiles (HDR histogram) and status counts.",
        discussion: """
            Seed a data set first with --seed (through the API, as the local operator on the Unix
            socket); --data FILE keeps its ids so later runs can skip seeding. Calls:
            check-access, get-org, answer-consent (a durable write), create-org (a durable write),
            or a weighted mix such as check-access=90,answer-consent=10.
            Closed loop by default: each of --connections × --in-flight workers sends its next call
            when the last is answered. With --rate, calls are sent on a fixed schedule (open loop)
            and latency counts from the scheduled time, so a slow server is not flattered.
            """
    )

    @OptionGroup var connection: ConnectionOptions
    @Option(help: "check-access, get-org, answer-consent, create-org, or a mix like check-access=90,answer-consent=10.")
    var call: String = "check-access"
    @Option(help: "Connections to open.") var connections: Int = 1
    @Option(help: "Calls in flight per connection.") var inFlight: Int = 1
    @Option(help: "Seconds to measure (after the warm-up).") var duration: Double = 10
    @Option(help: "Stop after this many measured calls instead of after --duration.") var count: Int?
    @Option(help: "Seconds of calls before measuring starts.") var warmup: Double = 1
    @Option(help: "Calls per second in all, on a fixed schedule (open loop).") var rate: Double?
    @Option(help: "Seed first: organizations=N,staff=N,patients=N,scopes=N,consents=N.") var seed: String?
    @Option(help: "Read the data set's ids from this file, or write them there after --seed.") var data: String?
    @Flag(help: "No progress line.") var quiet = false

    func validate() throws {
        guard connections >= 1, inFlight >= 1, duration > 0, warmup >= 0 else {
            throw ValidationError("--connections and --in-flight must be ≥ 1, --duration > 0, --warmup ≥ 0")
        }
        if let rate, rate <= 0 { throw ValidationError("--rate must be positive") }
        if let count, count < 1 { throw ValidationError("--count must be ≥ 1") }
        _ = try Operation.mix(call)
    }

    func run() async throws {
        let mix = try Operation.mix(call)
        let quiet = self.quiet
        let log: @Sendable (String) -> Void = { message in if !quiet { FileHandle.standardError.write(Data((message + "\n").utf8)) } }
        let benchData: BenchData
        do {
            if let seed {
                let local = try await OrgdClient.connect(to: connection.endpoint.endpoint, tls: connection.endpoint.tlsSettings)
                benchData = try await BenchData.seed(try BenchData.Counts(seed), client: local, log: log)
                await local.close()
                if let data { try JSONEncoder().encode(benchData).write(to: URL(fileURLWithPath: data)) }
            } else if let data {
                benchData = try JSONDecoder().decode(BenchData.self, from: Data(contentsOf: URL(fileURLWithPath: data)))
            } else if mix.allSatisfy({ $0.0 == .createOrganization }) {
                benchData = BenchData()
            } else {
                throw ValidationError("\(call) needs a data set: give --seed (and --data FILE to keep it) or --data FILE")
            }
        } catch let error as RPCError {
            throw Failure.report(error)
        }
        let plan = LoadPlan(
            mix: mix, connections: connections, inFlight: inFlight, duration: duration, count: count, warmup: warmup, rate: rate)
        let fallback: String? = connection.endpoint.isTCP ? benchData.serviceToken : nil
        let token: String? = connection.token ?? ProcessInfo.processInfo.environment["ORGD_TOKEN"] ?? fallback
        let progress: (@Sendable (String) -> Void)? = quiet ? nil : log
        let runner = LoadRunner(plan: plan, data: benchData, endpoint: connection.endpoint.endpoint, tls: connection.endpoint.tlsSettings, token: token, log: progress)
        let result = try await runner.run()
        if connection.output == .json || connection.output == .yaml {
            let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(result))
            try Output.emit(object: object, connection.output)
        } else {
            result.printTable()
        }
    }
}

/// One kind of call the bench makes.
enum Operation: String, CaseIterable, Sendable {
    case checkAccess = "check-access"
    case getOrganization = "get-org"
    case answerConsent = "answer-consent"
    case createOrganization = "create-org"

    /// "check-access" or "check-access=90,answer-consent=10".
    static func mix(_ text: String) throws -> [(Operation, Int)] {
        try text.split(separator: ",").map { part in
            let pair = part.split(separator: "=")
            guard let operation = Operation(rawValue: String(pair[0])) else {
                throw ValidationError("unknown call \(pair[0]): use \(allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard pair.count == 1 || (pair.count == 2 && Int(pair[1]).map { $0 > 0 } == true) else {
                throw ValidationError("a mix entry is CALL=WEIGHT with a positive weight, not \(part)")
            }
            return (operation, pair.count == 2 ? Int(pair[1])! : 1)
        }
    }
}

/// What to run.
struct LoadPlan: Sendable {
    var mix: [(Operation, Int)]
    var connections: Int
    var inFlight: Int
    var duration: Double
    var count: Int?
    var warmup: Double
    var rate: Double?
}

/// The figures a run produces.
struct BenchResult: Codable {
    struct Latency: Codable {
        var p50: Double
        var p90: Double
        var p99: Double
        var p999: Double
        var max: Double
        var mean: Double
    }
    var call: String
    var connections: Int
    var inFlight: Int
    var rate: Double?
    var seconds: Double
    var calls: Int
    var callsPerSecond: Double
    /// Microseconds.
    var latencyMicroseconds: Latency
    var status: [String: Int]

    func printTable() {
        print("call \(call), \(connections) connection(s) × \(inFlight) in flight" + (rate.map { ", open loop at \(Int($0))/s" } ?? ", closed loop"))
        print(String(format: "%d calls in %.2f s: %.0f calls/s", calls, seconds, callsPerSecond))
        let l = latencyMicroseconds
        print(String(format: "latency µs: p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f  (mean %.1f)", l.p50, l.p90, l.p99, l.p999, l.max, l.mean))
        print("status: " + status.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    }
}

/// Runs the plan: `connections` clients, `inFlight` workers each, every
/// worker keeping its own histogram and counts, merged at the end.
struct LoadRunner: Sendable {
    let plan: LoadPlan
    let data: BenchData
    let endpoint: OrgdEndpoint
    var tls: OrgdTLS? = nil
    let token: String?
    let log: (@Sendable (String) -> Void)?

    struct WorkerResult: Sendable {
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
        var status: [String: Int] = [:]
    }

    func run() async throws -> BenchResult {
        var clients: [OrgdClient] = []
        for _ in 0..<plan.connections { clients.append(try await OrgdClient.connect(to: endpoint, token: token, tls: tls)) }
        let workers = plan.connections * plan.inFlight
        let completed = CallCounter()
        let start = ContinuousClock.now
        let measureFrom = start + .milliseconds(Int64(plan.warmup * 1000))
        let stopAt = measureFrom + .milliseconds(Int64(plan.duration * 1000))
        let perWorkerCount = plan.count.map { max(1, ($0 + workers - 1) / workers) }
        let interval: Duration? = plan.rate.map { .nanoseconds(Int64(1e9 * Double(workers) / $0)) }
        let progress = Task { [log] in
            guard let log else { return }
            var last = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let now = completed.value.load(ordering: .relaxed)
                log(String(format: "  %6.1fs  %9d calls  %8d/s", (ContinuousClock.now - start).seconds, now, now - last))
                last = now
            }
        }
        let results = try await withThrowingTaskGroup(of: WorkerResult.self) { group in
            for worker in 0..<workers {
                let client = clients[worker % clients.count]
                group.addTask {
                    var generator = SystemRandomNumberGenerator()
                    var result = WorkerResult()
                    var measured = 0
                    var scheduled = start + (interval.map { $0 * Double(worker) / Double(workers) } ?? .zero)
                    var sequence = 0
                    while true {
                        if interval != nil, ContinuousClock.now < scheduled {
                            try await Task.sleep(until: scheduled, clock: .continuous)
                        }
                        let began = interval == nil ? ContinuousClock.now : scheduled
                        if let perWorkerCount { if measured >= perWorkerCount { break } } else if began >= stopAt { break }
                        let code = await self.call(client, worker: worker, sequence: sequence, using: &generator)
                        sequence += 1
                        let finished = ContinuousClock.now
                        if began >= measureFrom || (plan.count != nil && finished >= measureFrom) {
                            let micros = UInt64(max(1, (finished - began).microseconds))
                            _ = result.histogram.record(min(micros, 60_000_000))
                            result.status[code, default: 0] += 1
                            measured += 1
                        }
                        completed.value.add(1, ordering: .relaxed)
                        if let interval { scheduled += interval }
                    }
                    return result
                }
            }
            var all: [WorkerResult] = []
            for try await result in group { all.append(result) }
            return all
        }
        let ended = ContinuousClock.now
        progress.cancel()
        for client in clients { await client.close() }
        var histogram = WorkerResult().histogram
        var status: [String: Int] = [:]
        for result in results {
            histogram.add(result.histogram)
            status.merge(result.status, uniquingKeysWith: +)
        }
        let measuredStart = plan.count == nil ? measureFrom : min(measureFrom, ended)
        let seconds = plan.count == nil ? plan.duration : max(0.001, (ended - measuredStart).seconds)
        let calls = Int(histogram.totalCount)
        return BenchResult(
            call: plan.mix.map { "\($0.0.rawValue)=\($0.1)" }.joined(separator: ","),
            connections: plan.connections, inFlight: plan.inFlight, rate: plan.rate,
            seconds: seconds, calls: calls, callsPerSecond: Double(calls) / seconds,
            latencyMicroseconds: .init(
                p50: Double(histogram.valueAtPercentile(50)), p90: Double(histogram.valueAtPercentile(90)),
                p99: Double(histogram.valueAtPercentile(99)), p999: Double(histogram.valueAtPercentile(99.9)),
                max: Double(histogram.max), mean: histogram.mean),
            status: status
        )
    }

    /// Makes one call; returns its status code's name.
    func call(_ client: OrgdClient, worker: Int, sequence: Int, using generator: inout SystemRandomNumberGenerator) async -> String {
        let total = plan.mix.reduce(0) { $0 + $1.1 }
        var pick = Int.random(in: 0..<total, using: &generator)
        let operation = plan.mix.first { pick -= $0.1; return pick < 0 }!.0
        do {
            switch operation {
            case .checkAccess:
                let consent = data.consents.randomElement(using: &generator)!
                let patient = data.patients[consent[0]]
                var request = Orgd_V1_CheckAccessRequest()
                request.agentUserID = data.agents[patient.organization].randomElement(using: &generator)!
                request.patientID = patient.id
                request.scope.codingSystem = data.scopes[consent[1]][0]
                request.scope.codingCode = data.scopes[consent[1]][1]
                let response = try await client.consents.checkAccess(request)
                return response.allowed ? "OK" : "OK (denied)"
            case .getOrganization:
                var request = Orgd_V1_GetOrganizationRequest()
                request.id = data.organizations.randomElement(using: &generator)!
                request.staffPageSize = 10
                request.patientPageSize = 10
                _ = try await client.organizations.getOrganization(request)
            case .answerConsent:
                let consent = data.consents.randomElement(using: &generator)!
                let patient = data.patients[consent[0]]
                var study = Orgd_V1_StudyScopeConsents()
                study.studyID = data.requests[patient.organization]
                var answer = Orgd_V1_ScopeAnswer()
                answer.codingSystem = data.scopes[consent[1]][0]
                answer.codingCode = data.scopes[consent[1]][1]
                answer.consented = true
                study.scopeConsents = [answer]
                var body = Orgd_V1_ConsentAnswersRequest()
                body.patientID = patient.id
                body.studyScopeConsents = [study]
                // A service acting for the patient answers (never the local operator).
                let service: [(key: String, value: String)] = token == nil ? [("authorization", "Bearer \(data.serviceToken)")] : []
                _ = try await client.consents.updateConsents(body, options: CallOptions(metadata: service + [("orgd-act-as", patient.userID)]))
            case .createOrganization:
                var request = Orgd_V1_CreateOrganizationRequest()
                request.name = "Bench org \(worker)-\(sequence)-\(UInt32.random(in: 0...UInt32.max, using: &generator))"
                request.type = .department
                _ = try await client.organizations.createOrganization(request)
            }
            return "OK"
        } catch let error as RPCError {
            return error.code.description
        } catch {
            return "CLIENT_ERROR"
        }
    }
}

/// Calls finished so far, for the progress line.
final class CallCounter: Sendable {
    let value = Atomic<Int>(0)
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
}
