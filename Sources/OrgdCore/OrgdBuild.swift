/// Which orgd this is, for `orgd_build_info` and `--version`.
public enum OrgdBuild {
    /// The release; `git describe` of the tree it was built from is not
    /// known to SwiftPM, so it is kept here and bumped with each release.
    public static let version = "0.9.0"
    /// The labels of `orgd_build_info`.
    public static var labels: [(String, String)] {
        [("version", version), ("swift", swiftVersion)]
    }

    static var swiftVersion: String {
        #if swift(>=6.3)
        "6.3"
        #elseif swift(>=6.2)
        "6.2"
        #else
        "6"
        #endif
    }
}
