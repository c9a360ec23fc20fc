-- The meter shared by the token bucket, the leaky bucket and GCRA. Units: one hit is P units, the meter drains L
-- units a ms, C = capacity (B hits) * P. D: the units held now. mode: h hit, p peek. Returns ok (1 or 0), the units
-- held after the call and retry_after_ms.
local function meter(mode, L, P, B, C, c, D)
  if mode == 'h' and c > B then return 0, D, -1 end
  if mode == 'h' and c == 0 then return 1, D, 0 end
  local cu = c * P
  if mode == 'p' then cu = P end
  if D + cu <= C then
    if mode == 'p' then return 1, D, 0 end
    return 1, D + cu, 0
  end
  return 0, D, cdiv(D + cu - C, L)
end

-- The meter's decision: allowed, count, remaining, retry_after_ms, reset_after_ms. Da (the units held) may exceed
-- C: state of a larger capacity (the limit was lowered).
local function meter_result(ok, Da, retry, L, P, C)
  local rem = 0
  if ok == 1 then rem = math.max(0, idiv(C - Da, P)) end
  return ok, cdiv(Da, P), rem, retry, cdiv(Da, L)
end
