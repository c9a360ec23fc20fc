// The cluster's answers that say a command did not run and where to send it instead. These are protocol codes
// (the first word of the error reply, then fixed fields), not prose: parsed exactly, anything else is no redirect.
//   MOVED <slot> <host>:<port>    the slot lives elsewhere for good: patch the map, resend there
//   ASK <slot> <host>:<port>      this key is being migrated: resend there once, after ASKING; the map stays
//   TRYAGAIN ...                  a multi-key command met a slot in migration: resend after a short pause
//   CLUSTERDOWN ...               the cluster cannot serve the slot now: resend after a pause, within the deadline

public enum Redirect: Equatable, Sendable {
    case moved(slot: Int, to: NodeAddress)
    case ask(slot: Int, to: NodeAddress)
    case tryAgain
    case clusterDown

    /// The redirection an error reply stands for, or nil.
    public static func parse<C: Collection>(_ text: C) -> Redirect? where C.Element == UInt8 {
        let t = Array(text)
        func word(_ w: String) -> Bool {
            let b = Array(w.utf8)
            return t.count >= b.count && t[0..<b.count].elementsEqual(b) && (t.count == b.count || t[b.count] == 32)
        }
        if word("TRYAGAIN") { return .tryAgain }
        if word("CLUSTERDOWN") { return .clusterDown }
        let isMoved = word("MOVED")
        guard isMoved || word("ASK") else { return nil }
        let parts = t.split(separator: 32, omittingEmptySubsequences: false)
        guard parts.count == 3, let slot = Decimal.parse(parts[1]), slot >= 0, slot < Int64(ClusterSlot.count),
              parts[1].first != 45, let addr = address(parts[2]) else { return nil }
        return isMoved ? .moved(slot: Int(slot), to: addr) : .ask(slot: Int(slot), to: addr)
    }

    /// "host:port", "[v6]:port" or "v6:port" (Redis writes IPv6 unbracketed): split at the last ':'.
    public static func address<C: Collection>(_ b: C) -> NodeAddress? where C.Element == UInt8 {
        let a = Array(b)
        guard let colon = a.lastIndex(of: 58), colon > 0 else { return nil }
        var host = Array(a[..<colon])
        let port = a[(colon + 1)...]
        if host.first == 91, host.last == 93 { host = Array(host.dropFirst().dropLast()) }
        guard let p = Decimal.parse(port), p >= 1, p <= 65535, port.first != 45,
              let h = String(validating: host, as: UTF8.self), SlotMap.validHost(h) else { return nil }
        return NodeAddress(host: h, port: Int32(p))
    }
}
