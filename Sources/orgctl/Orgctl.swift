import ArgumentParser
import OrgdCore

struct Orgctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "orgctl",
        abstract: "Talk to orgd: organisations, people, memberships, tokens, health.",
        discussion: """
            Connects to the Unix socket by default ($ORGD_SOCKET, else $XDG_RUNTIME_DIR/orgd.sock, else ./orgd.sock),
            to ttrpc over TCP with --address HOST:PORT ($ORGD_ADDRESS), or to gRPC with --grpc HOST:PORT
            ($ORGD_GRPC); both need --token ($ORGD_TOKEN).
            Connection and output options may also come before the subcommand (orgctl --address H:P org list).
            Prints tables for people; -o json (or --json), -o yaml and -o id for scripts.
            On failure prints one line to standard error and exits 10 + the status code
            (NOT_FOUND 15, PERMISSION_DENIED 17, UNAVAILABLE 24, UNAUTHENTICATED 26; 64 for usage).
            """,
        version: "orgctl \(OrgdBuild.version)",
        subcommands: [
            Org.self, User.self, Patient.self, Staff.self, PatientMember.self, Whoami.self, My.self, Fhir.self, Consent.self, Invite.self, Outbox.self,
            Token.self, ServiceAccount.self, Health.self, Metrics.self, Bench.self, Audit.self, Backup.self, Rpc.self, Call.self,
        ]
    )
}
