import ArgumentParser

/// Connection and output options may come before the subcommand too, as
/// kubectl's and grpcurl's users expect: `orgctl --address HOST:PORT org
/// list` is `orgctl org list --address HOST:PORT`. ArgumentParser reads a
/// subcommand's options only after its name, so the words are moved there
/// before parsing: the leading options named here go right after the
/// subcommand's path (`org list`), before its own words, so an option given
/// again after the subcommand (the more specific place) wins.
enum GlobalOptions {
    /// Every option of `ConnectionOptions` and `EndpointOptions` with
    /// whether it takes a value; keep it in step with them (an option left
    /// out here still works after the subcommand).
    static let options: [String: Bool] = [
        "--socket": true, "--address": true, "--grpc": true, "--token": true, "--act-as": true, "--tls": false,
        "--tls-ca": true, "--tls-cert": true, "--tls-key": true, "--tls-server-name": true, "--timeout": true,
        "--json": false, "--output": true, "-o": true,
    ]

    static func hoisted(_ arguments: [String], root: any ParsableCommand.Type) -> [String] {
        var leading: [String] = []
        var rest = arguments[...]
        while let word = rest.first, word.hasPrefix("-") {
            let name = String(word.split(separator: "=", maxSplits: 1)[0])
            guard let takesValue = options[name] else { break }
            leading.append(word)
            rest = rest.dropFirst()
            if takesValue && !word.contains("="), let value = rest.first {
                leading.append(value)
                rest = rest.dropFirst()
            }
        }
        guard !leading.isEmpty else { return arguments }
        // The subcommand's path: the words that name subcommands, in turn.
        var path: [String] = []
        var command: any ParsableCommand.Type = root
        while let word = rest.first,
              let next = command.configuration.subcommands.first(where: { ($0.configuration.commandName ?? $0._commandName) == word }) {
            path.append(word)
            command = next
            rest = rest.dropFirst()
        }
        // No subcommand (`orgctl --socket s`): leave it for ArgumentParser to refuse.
        guard !path.isEmpty else { return arguments }
        return path + leading + rest
    }
}

@main
enum Main {
    static func main() async {
        await Orgctl.main(GlobalOptions.hoisted(Array(CommandLine.arguments.dropFirst()), root: Orgctl.self))
    }
}
