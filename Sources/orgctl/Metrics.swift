import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

struct Metrics: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print orgd's Prometheus metrics (orgd must run with --metrics-listen).")

    @Option(help: "The metrics listener HOST:PORT [ORGD_METRICS_ADDRESS].")
    var metricsAddress: String?

    @Option(help: "Only lines containing this text (e.g. orgd_calls_total).")
    var grep: String?

    func run() async throws {
        guard let address = metricsAddress ?? ProcessInfo.processInfo.environment["ORGD_METRICS_ADDRESS"],
              let url = URL(string: "http://\(address)/metrics")
        else { throw ValidationError("give --metrics-address HOST:PORT (orgd's --metrics-listen)") }
        let text: String
        do {
            let (data, response) = try await URLSession.shared.data(from: url)
            guard (response as? HTTPURLResponse)?.statusCode == 200 else {
                throw URLError(.badServerResponse)
            }
            text = String(decoding: data, as: UTF8.self)
        } catch {
            FileHandle.standardError.write(Data("orgctl: UNAVAILABLE: cannot read \(url): \(error.localizedDescription)\n".utf8))
            throw ExitCode(1)
        }
        for line in text.split(separator: "\n") where grep.map({ line.contains($0) }) ?? true {
            print(line)
        }
    }
}
