// Statuses, mirrored from include/hammer.h (values pinned; a C test checks they agree).

public enum Status: Int32, Sendable {
    case ok = 0
    case invalid = 1
    case connect = 2
    case timeout = 3
    case redis = 4
    case `protocol` = 5
    case nomem = 6
    case `internal` = 7

    /// Every status is below this (HAMMER_STATUS_LIMIT: the length of hammer_stats_t.errors).
    public static let limit = 16

    /// Static text for a status, as hammer_strerror returns it.
    public static func text(_ raw: Int32) -> StaticString {
        switch Status(rawValue: raw) {
        case .ok?: return "success"
        case .invalid?: return "invalid argument or configuration"
        case .connect?: return "cannot connect to Redis, or the connection was lost"
        case .timeout?: return "Redis connect or command timed out"
        case .redis?: return "Redis answered with an error"
        case .protocol?: return "Redis reply of an unexpected shape"
        case .nomem?: return "out of memory"
        case .internal?: return "internal error in libhammer"
        case nil: return "unknown hammer status"
        }
    }
}

/// A failure: a status and the words a person can act on. Never carries a password.
public struct Failure: Error, Equatable, Sendable {
    public var status: Status
    public var message: String
    /// Redis could not answer for now (down, slow, loading, busy, out of memory): the on_error policy may decide.
    public var transient: Bool
    /// A cluster's answer that the command did not run and where it belongs (MOVED, ASK, TRYAGAIN, CLUSTERDOWN).
    /// Boxed: one reference keeps Failure (and the Results that carry it) as small as before.
    public var redirect: Redirect? {
        get { redirectBox?.value }
        set { redirectBox = newValue.map(RedirectBox.init) }
    }
    var redirectBox: RedirectBox? = nil
    public init(_ status: Status, _ message: String, transient: Bool? = nil) {
        self.status = status
        self.message = message
        self.transient = transient ?? (status == .connect || status == .timeout)
    }
}

final class RedirectBox: Equatable, Sendable {
    let value: Redirect
    init(_ value: Redirect) { self.value = value }
    static func == (a: RedirectBox, b: RedirectBox) -> Bool { a.value == b.value }
}
