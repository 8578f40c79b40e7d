-- Time ranges for tool inputs ("30m", "24h", "7d", "4w", ISO-8601 intervals) and the
-- UTC time parsing/formatting the incident.io client needs (RFC 3339, HTTP dates).
-- Pure functions: the caller passes `now` (unix seconds) when it matters.
local M = {}

local UNIT_SECONDS = { m = 60, h = 3600, d = 86400, w = 7 * 86400 }

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = (z >= 0 and z or z - 146096) // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function days_in_month(y, m)
  local mdays = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
  if m == 2 and (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) then return 29 end
  return mdays[m]
end

local function epoch_of(y, mo, d, h, mi, s)
  if mo < 1 or mo > 12 or d < 1 or d > days_in_month(y, mo) then return nil end
  if h > 23 or mi > 59 or s >= 61 then return nil end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
end

-- Parses an RFC 3339 / ISO-8601 date or date-time; returns unix seconds (may carry a
-- fraction) or nil. A date alone is midnight UTC; a date-time without offset is UTC.
function M.parse_time(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if y then return epoch_of(tonumber(y), tonumber(mo), tonumber(d), 0, 0, 0) end
  local rest
  y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](.+)$")
  if not y then return nil end
  local h, mi, tail = rest:match("^(%d%d):(%d%d)(.*)$")
  if not h then return nil end
  local sec, frac = 0, 0
  local ss, rest2 = tail:match("^:(%d%d)(.*)$")
  if ss then
    sec, tail = tonumber(ss), rest2
    local f, rest3 = tail:match("^[.,](%d+)(.*)$")
    if f then frac, tail = tonumber("0." .. f), rest3 end
  end
  local offset = 0
  if tail ~= "" and tail ~= "Z" and tail ~= "z" then
    local sign, oh, om = tail:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then
      sign, oh = tail:match("^([+-])(%d%d)$")
      om = "00"
    end
    if not sign then return nil end
    offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
  end
  local t = epoch_of(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), sec)
  if not t then return nil end
  return t - offset + frac
end

local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6,
                 jul = 7, aug = 8, sep = 9, oct = 10, nov = 11, dec = 12 }

-- Parses an HTTP date (IMF-fixdate "Thu, 17 Apr 2025 11:17:18 GMT", RFC 850 or
-- asctime); returns unix seconds or nil.
function M.parse_http_date(s)
  if type(s) ~= "string" then return nil end
  local d, mon, y, h, mi, sec = s:match("^%a+,%s+(%d%d?)[%s%-](%a%a%a)[%s%-](%d+)%s+(%d%d):(%d%d):(%d%d)")
  if not d then
    local mon2, d2, h2, mi2, s2, y2 = s:match("^%a+%s+(%a%a%a)%s+(%d%d?)%s+(%d%d):(%d%d):(%d%d)%s+(%d%d%d%d)")
    if not mon2 then return nil end
    mon, d, h, mi, sec, y = mon2, d2, h2, mi2, s2, y2
  end
  local month = MONTHS[mon:lower()]
  if not month then return nil end
  local year = tonumber(y)
  if year < 100 then year = year + (year < 70 and 2000 or 1900) end
  return epoch_of(year, month, tonumber(d), tonumber(h), tonumber(mi), tonumber(sec))
end

-- "2025-04-17T11:17:18Z" (whole seconds, UTC).
function M.format_time(t)
  t = math.floor(t)
  local days = t // 86400
  local secs = t - days * 86400
  local y, m, d = civil_from_days(days)
  return string.format("%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d,
    secs // 3600, (secs % 3600) // 60, secs % 60)
end

-- "2025-04-17" (UTC day of t).
function M.format_date(t)
  local y, m, d = civil_from_days(math.floor(t) // 86400)
  return string.format("%04d-%02d-%02d", y, m, d)
end

-- Parses an ISO-8601 duration (P1W, P7D, PT30M, P1DT2H, PT1.5H). Years count as 365
-- days and months as 30: an interval such as P1M/2025-03-01 is approximate.
function M.parse_iso_duration(s)
  if type(s) ~= "string" or not s:match("^P") or #s < 3 then return nil end
  local total, in_time, pos = 0, false, 2
  local units_date = { Y = 365 * 86400, M = 30 * 86400, W = 7 * 86400, D = 86400 }
  local units_time = { H = 3600, M = 60, S = 1 }
  while pos <= #s do
    if s:sub(pos, pos) == "T" then
      if in_time then return nil end
      in_time, pos = true, pos + 1
      if pos > #s then return nil end
    else
      local num, unit, nxt = s:match("^(%d+[.,]?%d*)(%a)()", pos)
      if not num then return nil end
      local mult = (in_time and units_time or units_date)[unit]
      if not mult then return nil end
      total = total + tonumber((num:gsub(",", "."))) * mult
      pos = nxt
    end
  end
  return total
end

local function describe_expected()
  return "expected a duration like 30m, 24h, 7d or 4w, or an ISO-8601 interval such as "
    .. "2025-01-01T00:00:00Z/2025-01-08T00:00:00Z, 2025-01-01/P7D or P7D"
end

-- Parses a time range. Returns {from=, to=, seconds=, explicit_end=bool, spec=} in unix
-- seconds, or nil and a message saying what is accepted.
function M.parse(spec, now)
  now = now or os.time()
  if type(spec) ~= "string" or spec == "" then
    return nil, "time range is empty: " .. describe_expected()
  end
  local n, unit = spec:match("^(%d+)([mhdw])$")
  if n then
    local secs = tonumber(n) * UNIT_SECONDS[unit]
    if secs <= 0 then return nil, "time range " .. spec .. " is empty: " .. describe_expected() end
    return { from = now - secs, to = now, seconds = secs, explicit_end = false, spec = spec }
  end
  local a, b = spec:match("^([^/]+)/([^/]+)$")
  local from, to, explicit_end
  if a then
    local ta, tb = M.parse_time(a), M.parse_time(b)
    local da, db = M.parse_iso_duration(a), M.parse_iso_duration(b)
    if ta and tb then
      from, to, explicit_end = ta, tb, true
    elseif ta and db then
      from, to, explicit_end = ta, ta + db, true
    elseif da and tb then
      from, to, explicit_end = tb - da, tb, true
    else
      return nil, "cannot read time range " .. spec .. ": " .. describe_expected()
    end
  else
    local d = M.parse_iso_duration(spec)
    if not d then
      return nil, "cannot read time range " .. spec .. ": " .. describe_expected()
    end
    from, to, explicit_end = now - d, now, false
  end
  if to <= from then
    return nil, "time range " .. spec .. " ends before it starts"
  end
  return { from = from, to = to, seconds = to - from, explicit_end = explicit_end, spec = spec }
end

return M
