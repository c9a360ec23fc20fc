// The rate-limit script: all five algorithms, each decision one atomic step and one round trip.
// The same arithmetic is modelled in pure Swift (Algorithms.swift); tests compare the two decision by decision.
//
// Units: one hit is `period` units; the buckets refill or leak `limit` units per ms; capacity = burst * period.
// Validation at the C boundary keeps every quantity below 2^53, so Lua's doubles stay exact; idiv/cdiv divide
// exactly. Nothing is written on a denied hit or a peek. Keys (base = prefix .. id .. ':'):
//   fixed window  base .. <window>  hash {count, created, updated}: the seed's bucket layout, shared with check_rate
//   sliding       base .. 'sw'      zset of hits (member "<seq>:<cost>", score = time)
//                 base .. 'swm'     hash {total, seq}
//   token bucket  base .. 'tb'      hash {u = free units, t = ms}
//   leaky bucket  base .. 'lb'      hash {u = level units, t = ms}
//   GCRA          base .. 'gcra'    hash {tat = ms, f = fraction of a ms in 1/limit}

extension Scripts {
    /// What every limiter script starts with. KEYS[1] the id's index. ARGV: base (prefix .. id .. ':'), algorithm,
    /// mode (h hit, p peek, c check_rate, i inspect), limit, period, capacity in hits (burst or limit), cost,
    /// now ('' = Redis TIME). Each script returns {allowed, count, remaining, retry_after_ms, reset_after_ms};
    /// the fixed window's mode i returns {count, created, updated, ms to the window's end}.
    static let limiterPrelude = indexLua + """
    local base, alg, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3]
    local L, P, B, c = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
    local function fmt(x) return string.format('%d', x) end
    local now, nows = 0, ARGV[8]
    if nows == '' then
      local tm = redis.call('TIME')
      now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
      nows = fmt(now)
    else now = tonumber(nows) end
    local function idiv(a, b)
      local q = math.floor(a / b)
      if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
      return q
    end
    local function cdiv(a, b) return -idiv(-a, b) end
    local C = B * P
    local GRACE = 1000  -- state outlives its need by 1 s, so callers whose clocks differ a little still agree

    """

    /// The meter shared by the token bucket, leaky bucket and GCRA: D is the consumed units now.
    static let meterLua = """
    local function decide(D)
      local cu = c * P
      if mode == 'p' then cu = P end
      if mode == 'h' and c > B then return 0, D, -1 end
      if mode == 'h' and c == 0 then return 1, D, 0 end
      if D + cu <= C then
        if mode == 'p' then return 1, D, 0 end
        return 1, D + cu, 0
      end
      return 0, D, cdiv(D + cu - C, L)
    end
    local function result(ok, D, retry)
      local rem = 0
      if ok == 1 then rem = idiv(C - D, P) end
      return {ok, cdiv(D, P), rem, retry, cdiv(D, L)}
    end
    local function hash2(key, a, b)
      local v = redis.call('HMGET', key, a, b)
      return tonumber(v[1]), tonumber(v[2])
    end
    local function store(key, a, av, b, bv, ttl)
      redis.call('HSET', key, a, fmt(av), b, fmt(bv))
      redis.call('PEXPIRE', key, ttl + GRACE)
    end

    """

    public static let fixedWindow = Script(limiterPrelude + """
    local w = idiv(now, P)
    local key = base .. fmt(w)
    local left = (w + 1) * P - now
    local ttl = left + GRACE
    if mode == 'i' then
      local v = redis.call('HMGET', key, 'count', 'created', 'updated')
      return {v[1] or '0', v[2] or '0', v[3] or '0', left}
    end
    local function write(add)
      local n = redis.call('HINCRBY', key, 'count', add)
      if redis.call('HSETNX', key, 'created', nows) == 1 then index_bucket(KEYS[1], base, fmt(w)) end
      redis.call('HSET', key, 'updated', nows)
      redis.call('PEXPIRE', key, ttl)
      keep_index(KEYS[1], ttl)
      if n >= 9007199254740992 then return redis.call('HGET', key, 'count') end
      return n
    end
    if mode == 'c' then
      -- Hammer's check_rate: the hit counts even when denied.
      local count = write(c)
      local ok, rem, retry, reset = 0, 0, 0, 0
      if tonumber(count) > 0 then reset = left end
      if tonumber(count) <= L then ok, rem = 1, L - tonumber(count)
      elseif c > L then retry = -1
      else retry = left end
      return {ok, count, rem, retry, reset}
    end
    local cur = tonumber(redis.call('HGET', key, 'count') or '0')
    local count, ok, need = cur, 0, c
    if mode == 'p' then
      need = 1
      if cur + 1 <= L then ok = 1 end
    elseif c == 0 then ok = 1
    elseif c <= L and cur + c <= L then
      count = write(c)
      ok = 1
    end
    local rem, retry, reset = 0, 0, 0
    if count > 0 then reset = left end
    if ok == 1 then rem = math.max(0, L - count)
    elseif need > L then retry = -1
    else retry = left end
    return {ok, count, rem, retry, reset}
    """)

    public static let slidingWindow = Script(limiterPrelude + """
    local log, meta = base .. 'sw', base .. 'swm'
    local total = tonumber(redis.call('HGET', meta, 'total') or '0')
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
      local seq = redis.call('HINCRBY', meta, 'seq', 1)
      redis.call('ZADD', log, nows, fmt(seq) .. ':' .. fmt(c))
      live = live + c
      redis.call('HSET', meta, 'total', fmt(live))
      redis.call('PEXPIRE', log, top - now + P + GRACE)
      redis.call('PEXPIRE', meta, top - now + P + GRACE)
    end
    local rem, retry, reset = 0, 0, 0
    if live > 0 then reset = top + P - now end
    if ok == 1 then rem = L - live
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
    return {ok, live, rem, retry, reset}

    """)

    public static let bucket = Script(limiterPrelude + meterLua + """
    local key = base .. 'tb'
    if alg == 3 then key = base .. 'lb' end
    local u, t = hash2(key, 'u', 't')
    local D = 0
    if u ~= nil and t ~= nil then
      local el = math.max(0, now - t)
      if alg == 2 then D = C - math.min(C, math.max(0, u)) else D = math.min(C, math.max(0, u)) end
      if el >= cdiv(D, L) then D = 0 else D = D - el * L end
    else t = now end
    local ok, Da, retry = decide(D)
    if ok == 1 and mode == 'h' and Da ~= D then
      local keep = Da
      if alg == 2 then keep = C - Da end
      store(key, 'u', keep, 't', math.max(t, now), cdiv(Da, L))
    end
    return result(ok, Da, retry)

    """)

    public static let gcra = Script(limiterPrelude + meterLua + """
    local key = base .. 'gcra'
    local tat, f = hash2(key, 'tat', 'f')
    local D = 0
    if tat ~= nil and f ~= nil and tat >= now then
      local ahead = tat - now
      if ahead > cdiv(C, L) + 1 then
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
    local ok, Da, retry = decide(D)
    if ok == 1 and mode == 'h' and Da ~= D then
      local q = idiv(Da, L)
      store(key, 'tat', now + q, 'f', Da - q * L, cdiv(Da, L))
    end
    return result(ok, Da, retry)
    """)

    /// The script of an algorithm: one EVALSHA per decision, with no Lua of the other algorithms to load.
    public static func limiter(_ a: Algorithm) -> Script {
        switch a {
        case .fixedWindow: return fixedWindow
        case .slidingWindow: return slidingWindow
        case .tokenBucket, .leakyBucket: return bucket
        case .gcra: return gcra
        }
    }
}
