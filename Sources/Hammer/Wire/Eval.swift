// Scripts on a connection: by EVALSHA (the script's hash: a few bytes a call), and once by EVAL (which loads it)
// when Redis answers NOSCRIPT (a flushed or restarted server): the only resend the library makes on one connection,
// because Redis said it did not run the script.
import CHiredis
import HammerCore

extension Connection {
    static func isNoScript(_ r: UnsafeMutablePointer<redisReply>) -> Bool {
        r.pointee.type == REDIS_REPLY_ERROR && text(r).hasPrefix("NOSCRIPT")
    }

    /// Runs a script by EVALSHA; on NOSCRIPT (a flushed or restarted server) sends it once by EVAL, which loads it.
    /// `fill` appends numkeys, keys and arguments after the first two arguments.
    func eval(_ script: Script, poll: Bool = true,
              _ fill: (inout Args) -> Void) -> Result<UnsafeMutablePointer<redisReply>, Failure> {
        args.reset()
        args.add("EVALSHA")
        args.add(script.sha)
        fill(&args)
        let first = run(poll: poll)
        guard case let .success(r) = first, Connection.isNoScript(r) else { return first }
        freeReplyObject(r)
        if asking {
            // An ASK redirection's ASKING held for one command only: the EVAL needs its own.
            args.reset()
            args.add("ASKING")
            switch run(poll: poll) {
            case let .failure(f): return .failure(f)
            case let .success(a): freeReplyObject(a)
            }
        }
        args.reset()
        args.add("EVAL")
        args.add(script.source)
        fill(&args)
        return run(poll: poll)
    }
}
