// The rate-limit script: all five algorithms, each decision one atomic step and one round trip.
// The same arithmetic is modelled in pure Swift (Algorithms.swift); tests compare the two decision by decision.
//
// Units: one hit is `period` units; the buckets refill or leak `limit` units per ms; capacity = burst * period.
// Validation at the C boundary keeps every quantity below 2^53, so Lua's doubles stay exact; idiv/cdiv divide
// exactly. Nothing is written on a denied hit or a peek. Keys (base = prefix .. id .. ':'):
//   fixed window  base .. <window>  hash {count, created, updated}: the seed's bucket layout, shared with check_rate
//   sliding       base .. 'sw'      zset of hits (member "<seq>:<cost>", score = time)
//                 base .. 'swm'     string "<total> <seq>"
//   token bucket  base .. 'tb'      string "<free units> <ms>"
//   leaky bucket  base .. 'lb'      string "<level units> <ms>"
//   GCRA          base .. 'gcra'    string "<tat ms> <fraction of a ms in 1/limit>"
// State is read with one GET and written with one SET .. PX: each redis.call costs about a microsecond in Redis.

extension Scripts {
    /// Exact floor and ceiling division of doubles holding integers below 2^53.
    static let divLua = """
    local function idiv(a, b)
      local q = math.floor(a / b)
      if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
      return q
    end
    local function cdiv(a, b) return -idiv(-a, b) end

    """

    /// A single decision's arguments as variables (KEYS[1] the id's index; ARGV base, algorithm, mode, limit,
    /// period, capacity, cost, now, '' for Redis's TIME).
    static let argumentsLua = """
    local idx, base, alg, mode = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
    local L, P, B, c, nows = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
    local now
    if nows == '' then
      local tm = redis.call('TIME')
      now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
      nows = string.format('%d', now)
    else now = tonumber(nows) end

    """

    /// Helpers of the algorithms written as functions: exact integer division, the 1 s grace of state TTLs, and
    /// Redis's clock.
    static let commonLua = divLua + """
    local function fmt(x) return string.format('%d', x) end
    local GRACE = 1000  -- state outlives its need by 1 s, so callers whose clocks differ a little still agree
    local function redis_now()
      local tm = redis.call('TIME')
      return tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
    end

    """

    /// The algorithms, as functions of (index key, base = prefix .. id .. ':', algorithm, mode (h hit, p peek,
    /// c check_rate, i inspect), limit, period, capacity in hits, cost, now, now as text). Each returns
    /// {allowed, count, remaining, retry_after_ms, reset_after_ms}; the fixed window's mode i returns
    /// {count, created, updated, ms to the window's end}.
    /// The fixed window (variables idx, base, mode, L, P, c, now, nows): the seed's buckets, one per window. idx
    /// may be nil (batches): the index key is then made from base on a window's first hit, the only time it is used.
    /// Straight-line code: no helper functions.
    static let fixedWindowBody = """
      local w = math.floor(now / P)
      if w * P > now then w = w - 1 elseif (w + 1) * P <= now then w = w + 1 end
      local member
      if w == last_w then member = last_m else member = string.format('%d', w); last_w, last_m = w, member end
      local key = base .. member
      local left = (w + 1) * P - now
      if mode == 'i' then
        local v = redis.call('HMGET', key, 'count', 'created', 'updated')
        return {v[1] or '0', v[2] or '0', v[3] or '0', left}
      end
      local cur, add, count = 0, 0, 0
      if mode == 'c' or (mode == 'h' and c > 0 and c <= L) then
        -- Hammer's check_rate counts the hit even when denied; a hit is added, and taken back when over the limit
        -- (an allowed hit, the common case, is then two commands).
        local k, incr, ttl, n = key, c, left + 1000, nil
        n = redis.call('HINCRBY', k, 'count', incr)
        if mode == 'h' and n > L then
          redis.call('HINCRBY', k, 'count', -c)
          cur = n - c
          count = cur
          if cur >= 9007199254740992 then count = redis.call('HGET', k, 'count') end
        else
          add = c
    \(afterIncrement(prelude: "idx = idx or base .. 'index'"))
          count = n
        end
      else
        cur = tonumber(redis.call('HGET', key, 'count') or '0')
        count = cur
      end
      local num = tonumber(count)
      local need, ok = c, 0
      if mode == 'p' then need = 1 end
      if mode == 'c' then
        if num <= L then ok = 1 end
      elseif mode == 'p' then
        if cur + 1 <= L then ok = 1 end
      elseif add > 0 or c == 0 then ok = 1 end
      local rem, retry, reset = 0, 0, 0
      if num > 0 then reset = left end
      if ok == 1 then
        if mode == 'p' then rem = math.max(0, L - cur) else rem = math.max(0, L - num) end
      elseif need > L then retry = -1
      else retry = left end
      return {ok, count, rem, retry, reset}
    """

    /// The window last formatted as text and its text (the requests of a batch mostly share a window).
    static let windowCacheLua = "local last_w, last_m\n"

    /// The fixed window as a function, for batches.
    static let fixedWindowLua = windowCacheLua + function("fixed_window", fixedWindowBody)

    static let slidingWindowLua = """
    local function sliding_window(idx, base, alg, mode, L, P, B, c, now, nows)
      local C = B * P
      local log, meta = base .. 'sw', base .. 'swm'
      local total, seq = 0, 0
      local m = redis.call('GET', meta)
      if m then
        local a, b = string.match(m, '^(%d+) (%d+)$')
        total, seq = tonumber(a) or 0, tonumber(b) or 0
      end
      local edge = now - P
      local gone = redis.call('ZRANGEBYSCORE', log, '-inf', fmt(edge))
      local expired = 0
      for i = 1, #gone do expired = expired + tonumber(string.match(gone[i], ':(%d+)$')) end
      local live = total - expired
      local newest = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
      local top = now
      if #newest == 2 and tonumber(newest[2]) > top then top = tonumber(newest[2]) end
      local need = c
      if mode == 'p' then need = 1 end
      local ok = 0
      if mode == 'h' and c == 0 then ok = 1
      elseif need <= L and live + need <= L then ok = 1 end
      if ok == 1 and mode == 'h' and c > 0 then
        if #gone > 0 then redis.call('ZREMRANGEBYSCORE', log, '-inf', fmt(edge)) end
        seq = seq + 1
        redis.call('ZADD', log, nows, fmt(seq) .. ':' .. fmt(c))
        live = live + c
        redis.call('SET', meta, fmt(live) .. ' ' .. fmt(seq), 'PX', top - now + P + GRACE)
        redis.call('PEXPIRE', log, top - now + P + GRACE)
      end
      local rem, retry, reset = 0, 0, 0
      if live > 0 then reset = top + P - now end
      if ok == 1 then rem = math.max(0, L - live)   -- live may exceed L: state left by a larger limit
      elseif need > L then retry = -1
      else
        local want = live + need - L
        local freed, off = 0, 0
        while retry == 0 do
          local page = redis.call('ZRANGEBYSCORE', log, '(' .. fmt(edge), '+inf', 'WITHSCORES', 'LIMIT', off, 256)
          if #page == 0 then retry = -1 break end
          for i = 1, #page, 2 do
            freed = freed + tonumber(string.match(page[i], ':(%d+)$'))
            if freed >= want then retry = tonumber(page[i + 1]) + P - now break end
          end
          off = off + 256
        end
      end
      return ok, live, rem, retry, reset
    end

    """

    /// Token bucket (alg 2, state = free units) and leaky bucket (alg 3, state = level): the same meter.
    /// The meter shared by the token bucket, leaky bucket and GCRA (variables mode, L, P, B, C, c): D is the consumed
    /// units now; decide() says whether the hit fits, result() forms the decision; state is one string.
    /// The meter shared by the token bucket, leaky bucket and GCRA (variables mode, L, P, B, C, c, D, the units
    /// consumed now): sets ok, Da (the units consumed after the call) and retry.
    static let meterLua = """
      local ok, Da, retry = 0, D, 0
      local cu = c * P
      if mode == 'p' then cu = P end
      if mode == 'h' and c > B then retry = -1
      elseif mode == 'h' and c == 0 then ok = 1
      elseif D + cu <= C then
        ok = 1
        if mode ~= 'p' then Da = D + cu end
      else retry = cdiv(D + cu - C, L) end
    """

    /// The decision of the meter (variables ok, Da, retry, C, P, L).
    static let meterResultLua = """
      local rem = 0
      if ok == 1 then rem = math.max(0, idiv(C - Da, P)) end   -- Da may exceed C: state of a larger capacity
      return {ok, cdiv(Da, P), rem, retry, cdiv(Da, L)}
    """

    /// The state of a bucket or GCRA (variable key): two integers in one string, or nil, nil.
    static let loadLua = """
      local s1, s2
      local v = redis.call('GET', key)
      if v then
        local a, b = string.match(v, '^(%-?%d+) (%-?%d+)$')
        s1, s2 = tonumber(a), tonumber(b)
      end
    """

    /// Token bucket (alg 2, state = free units) and leaky bucket (alg 3, state = level): the same meter.
    /// Variables idx, base, alg, mode, L, P, B, c, now, nows; functions idiv, cdiv.
    static let bucketBody = """
      local C = B * P
      local key = base .. 'tb'
      if alg == 3 then key = base .. 'lb' end
    \(loadLua)
      local u, t = s1, s2
      local D = 0
      if u ~= nil and t ~= nil then
        local el = math.max(0, now - t)
        if alg == 2 then D = C - math.min(C, math.max(0, u)) else D = math.min(C, math.max(0, u)) end
        if el >= cdiv(D, L) then D = 0 else D = D - el * L end
      else t = now end
    \(meterLua)
      if ok == 1 and mode == 'h' and Da ~= D then
        local keep = Da
        if alg == 2 then keep = C - Da end
        redis.call('SET', key, string.format('%d %d', keep, math.max(t, now)), 'PX', cdiv(Da, L) + 1000)
      end
    \(meterResultLua)
    """

    /// GCRA: the theoretical arrival time (tat ms + f / limit). Same variables as bucketBody.
    static let gcraBody = """
      local C = B * P
      local key = base .. 'gcra'
    \(loadLua)
      local tat, f = s1, s2
      local D = 0
      if tat ~= nil and f ~= nil and tat >= now then
        local ahead = tat - now
        -- past capacity (the caller's clock stepped back): full, and the wait counts from the real TAT
        if ahead > cdiv(C, L) + 1 or ahead * L + f > C then
          local ok, retry = 0, -1
          if mode == 'h' and c == 0 then ok, retry = 1, 0
          elseif not (mode == 'h' and c > B) then
            local cu = c * P
            if mode == 'p' then cu = P end
            retry = ahead + cdiv(f + cu - C, L)
          end
          local reset = ahead
          if f > 0 then reset = ahead + 1 end
          return {ok, B, 0, retry, reset}
        end
        D = ahead * L + f
      end
    \(meterLua)
      if ok == 1 and mode == 'h' and Da ~= D then
        local q = idiv(Da, L)
        redis.call('SET', key, string.format('%d %d', now + q, Da - q * L), 'PX', cdiv(Da, L) + 1000)
      end
    \(meterResultLua)
    """

    static let bucketLua = function("bucket", bucketBody)

    static let gcraLua = function("gcra", gcraBody)

    /// A body as a Lua function of the decision's variables, for batches: its `return {a, b, ...}` lines (one
    /// line each in the bodies) become `return a, b, ...`, so a decision costs no table of its own.
    static func function(_ name: String, _ body: String) -> String {
        "local function \(name)(idx, base, alg, mode, L, P, B, c, now, nows)\n\(multipleReturns(body))\nend\n\n"
    }

    /// `body` with each line `<indent>return {<values>}` written `<indent>return <values>`.
    static func multipleReturns(_ body: String) -> String {
        body.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let indent = line.prefix { $0 == " " }
            let rest = line.dropFirst(indent.count)
            guard rest.hasPrefix("return {"), rest.hasSuffix("}") else { return String(line) }
            return String(indent) + "return " + rest.dropFirst("return {".count).dropLast()
        }.joined(separator: "\n")
    }

    /// The straight-line script of one decision: the arguments as variables, the two division helpers, the body.
    static func straight(_ body: String) -> Script {
        Script(argumentsLua + divLua + body)
    }

    /// One decision: KEYS[1] the id's index; ARGV base, algorithm, mode, limit, period, capacity, cost, now
    /// ('' = Redis TIME).
    static func single(_ lua: String, _ function: String) -> Script {
        Script(commonLua + lua + """
        local now, nows = 0, ARGV[8]
        if nows == '' then now = redis_now(); nows = fmt(now) else now = tonumber(nows) end
        return {\(function)(KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]),
          tonumber(ARGV[6]), tonumber(ARGV[7]), now, nows)}
        """)
    }

    public static let fixedWindow = Script(argumentsLua + windowCacheLua + fixedWindowBody)
    public static let slidingWindow = single(slidingWindowLua, "sliding_window")
    public static let bucket = straight(bucketBody)
    public static let gcra = straight(gcraBody)

    /// The script of an algorithm: one EVALSHA per decision, with no Lua of the other algorithms to load.
    public static func limiter(_ a: Algorithm) -> Script {
        switch a {
        case .fixedWindow: return fixedWindow
        case .slidingWindow: return slidingWindow
        case .tokenBucket, .leakyBucket: return bucket
        case .gcra: return gcra
        }
    }

    /// Fields per limiter of limiterMany, and per request.
    public static let limiterManySpecFields = 5
    public static let limiterManyFields = 4

    /// Many decisions in one script (a batch): no KEYS; ARGV[1] is the number of distinct limiters, then 5 fields a
    /// limiter (algorithm, mode, limit, period, capacity), then 4 fields a request: base, its limiter's number (from
    /// 1), cost, now ('' = Redis TIME, read once). Returns 5 elements a request, in one flat array: its decision, or
    /// an error reply of its own and four zeros (a failed request does not stop the others).
    public static let limiterMany = Script(errLua + commonLua + fixedWindowLua + slidingWindowLua + bucketLua + gcraLua + """
    local run = {[0] = fixed_window, [1] = sliding_window, [2] = bucket, [3] = bucket, [4] = gcra}
    local ns = tonumber(ARGV[1])
    local specs = {}
    for s = 1, ns do
      local o = 2 + (s - 1) * 5
      specs[s] = {tonumber(ARGV[o]), ARGV[o + 1], tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3]), tonumber(ARGV[o + 4])}
    end
    local out, n, clock = {}, 0, nil
    local o, last = 2 + ns * 5, #ARGV - 3
    -- Requests run under one pcall until one fails: that one answers its error, and the next pcall goes on.
    local function decide_from_o()
      while o <= last do
        local base, sp, nows, now = ARGV[o], specs[tonumber(ARGV[o + 1])], ARGV[o + 3], 0
        if nows == '' then
          clock = clock or redis_now()
          now, nows = clock, fmt(clock)
        else now = tonumber(nows) end
        local alg = sp[1]
        local a, b, d, e, f = run[alg](nil, base, alg, sp[2], sp[3], sp[4], sp[5], tonumber(ARGV[o + 2]), now, nows)
        out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = a, b, d, e, f
        n, o = n + 5, o + 4
      end
    end
    while o <= last do
      local ok, err = pcall(decide_from_o)
      if not ok then
        out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = err_of(err), 0, 0, 0, 0
        n, o = n + 5, o + 4
      end
    end
    return out
    """)
}
