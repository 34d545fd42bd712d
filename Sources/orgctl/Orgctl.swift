import ArgumentParser
import OrgdCore

@main
struct Orgctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "orgctl",
        abstract: "Talk to orgd: organisations, people, memberships, tokens, health.",
        discussion: """
            Connects to the Unix socket by default ($ORGD_SOCKET, else $XDG_RUNTIME_DIR/orgd.sock, else ./orgd.sock),
            to ttrpc over TCP with --address HOST:PORT ($ORGD_ADDRESS), or to gRPC with --grpc HOST:PORT
            ($ORGD_GRPC); both need --token ($ORGD_TOKEN).
            Prints tables for people; --json prints one JSON document for scripts.
            On failure prints one line to standard error and exits non-zero.
            """,
        version: "orgctl \(OrgdBuild.version)",
        subcommands: [
            Org.self, User.self, Patient.self, Staff.self, PatientMember.self, Whoami.self, My.self, Fhir.self, Consent.self, Invite.self, Outbox.self,
            Token.self, ServiceAccount.self, Health.self, Metrics.self, Bench.self, Audit.self, Backup.self,
        ]
    )
}
